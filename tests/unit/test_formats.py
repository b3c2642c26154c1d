"""Prompt formats: rendered once, encoded the same way by the trainer, the evaluator and the logit report."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from emtune.data.formats import QWEN25_MATH_COT_SYSTEM, encode_prompt, format_prompt
from emtune.errors import DataError


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_chat_prompt_ends_with_the_generation_prompt_and_gets_no_extra_tokens(tokenizer) -> None:
    text = format_prompt("What is 2+3?", "chat", tokenizer)
    assert text.startswith("<|im_start|>user\nWhat is 2+3?") and text.endswith("<|im_start|>assistant\n")
    assert encode_prompt("What is 2+3?", "chat", tokenizer) == tokenizer(text, add_special_tokens=False).input_ids


def test_cot_format_carries_the_system_message(tokenizer) -> None:
    text = format_prompt("What is 2+3?", "qwen25-math-cot", tokenizer)
    assert text.startswith(f"<|im_start|>system\n{QWEN25_MATH_COT_SYSTEM}<|im_end|>")


def test_raw_format_is_the_problem_itself(tokenizer) -> None:
    assert format_prompt("What is 2+3?", "raw", tokenizer) == "What is 2+3?"
    assert tokenizer.decode(encode_prompt("What is 2+3?", "raw", tokenizer)) == "What is 2+3?"


def test_unknown_format_is_a_clear_error(tokenizer) -> None:
    with pytest.raises(DataError, match="unknown prompt format 'alpaca'; allowed: chat, qwen25-math-cot, raw"):
        format_prompt("x", "alpaca", tokenizer)
