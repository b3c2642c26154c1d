"""Prompt formats: how a problem's text becomes the model's prompt. Prep records the format; the
trainer and the evaluator apply it the same way."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from emtune.errors import DataError

QWEN25_MATH_COT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
PROMPT_FORMATS = ("chat", "qwen25-math-cot", "raw")


def format_prompt(problem: str, prompt_format: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """Render one problem as prompt text (special tokens included, nothing tokenized yet)."""
    if prompt_format == "raw":
        return problem
    if prompt_format not in PROMPT_FORMATS:
        raise DataError(f"unknown prompt format {prompt_format!r}; allowed: {', '.join(PROMPT_FORMATS)}")
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"prompt format {prompt_format!r} needs a chat template, and the tokenizer has none")
    messages = [{"role": "user", "content": problem}]
    if prompt_format == "qwen25-math-cot":
        messages.insert(0, {"role": "system", "content": QWEN25_MATH_COT_SYSTEM})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return str(text)


def encode_prompt(problem: str, prompt_format: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids of the rendered prompt. Chat formats already hold their special tokens; only a raw prompt
    gets the tokenizer's own (e.g. a BOS)."""
    text = format_prompt(problem, prompt_format, tokenizer)
    return list(tokenizer(text, add_special_tokens=prompt_format == "raw")["input_ids"])
