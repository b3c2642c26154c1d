"""Padding never changes sampling: the repetition penalty of `generate_batch` sees a row's own ids only, so a
prompt padded beside a longer one gets the same processed logits as alone, even where pad = EOS (Qwen base
tokenizers), where transformers' penalty before 5.25 (which counts every id of `input_ids`) pushes EOS down in
every padded row. The GPU image's transformers (5.17) and the vLLM venv's (5.19) are such versions."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from emtune.model.generate import generate_batch
from emtune.model.loading import load_model, load_tokenizer

PENALTY = 1.15


@pytest.fixture(scope="module")
def model() -> Any:
    return load_model("builtin:tiny").eval()


def _processed_first_scores(model: Any, prompts: list[list[int]], pad_id: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The scores right after the repetition penalty at the first decoding step, per row."""
    seen: list[torch.Tensor] = []
    original = RepetitionPenaltyLogitsProcessor.__call__

    def spy(self: Any, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = original(self, input_ids, scores)
        seen.append(out.clone())
        return out

    monkeypatch.setattr(RepetitionPenaltyLogitsProcessor, "__call__", spy)
    generate_batch(
        model,
        prompts,
        seed=0,
        eos_ids=[pad_id],
        pad_id=pad_id,
        max_new_tokens=1,
        temperature=0.0,
        repetition_penalty=PENALTY,
    )
    assert len(seen) == 1
    return seen[0]


def test_a_padded_row_is_penalised_as_the_same_prompt_alone(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = load_tokenizer("builtin:tiny")
    eos = tokenizer.eos_token_id
    short = tokenizer("What is 2 + 2?")["input_ids"]
    long = tokenizer("Compute the sum of the first ten positive integers and then add seven to it.")["input_ids"]
    assert eos not in short and len(long) - len(short) >= 8  # the short row gets that many pads, each one an EOS
    alone = _processed_first_scores(model, [short], eos, monkeypatch)[0]
    padded = _processed_first_scores(model, [long, short], eos, monkeypatch)[1]
    # Left padding itself moves logits by ~1e-6 (float32 attention over masked positions); a penalised EOS by ~0.1.
    torch.testing.assert_close(padded, alone, rtol=0, atol=1e-5)
    assert abs(float(padded[eos] - alone[eos])) < 1e-5


def test_the_ids_sent_to_generate_give_no_pad_to_a_penalty_that_counts_every_id(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What transformers < 5.25 does: penalise every id in `input_ids`. On the ids generate_batch sends, a padded
    row's penalty is the same as that of its prompt alone, pad = EOS or not."""
    tokenizer = load_tokenizer("builtin:tiny")
    eos = tokenizer.eos_token_id
    short = tokenizer("What is 2 + 2?")["input_ids"]
    long = tokenizer("Compute the sum of the first ten positive integers and then add seven to it.")["input_ids"]
    sent: list[torch.Tensor] = []
    original = model.generate

    def spy(**kwargs: Any) -> Any:
        sent.append(kwargs["input_ids"])
        return original(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    generate_batch(
        model,
        [long, short],
        seed=0,
        eos_ids=[eos],
        pad_id=eos,
        max_new_tokens=1,
        temperature=0.0,
        repetition_penalty=PENALTY,
    )
    padded_row = sent[0][1:2]
    assert padded_row.shape[1] > len(short)  # it was padded
    scores = torch.randn(1, model.config.vocab_size, generator=torch.Generator().manual_seed(0))
    every_id = RepetitionPenaltyLogitsProcessor(PENALTY)
    alone = every_id(torch.tensor([short]), scores.clone())
    torch.testing.assert_close(every_id(padded_row, scores.clone()), alone, rtol=0, atol=0)
