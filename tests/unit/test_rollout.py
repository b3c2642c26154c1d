"""The transformers rollout engine: batched sampling, EOS handling, reproducible seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emtune.model.generate import PROMPT_WIDTH_BUCKET, cut_at_eos, left_pad
from emtune.train.rollout import HFRolloutEngine, RolloutRequest, SamplingParams

PARAMS = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def engine(model, **kwargs) -> HFRolloutEngine:
    return HFRolloutEngine(model, eos_ids=[model.generation_config.eos_token_id], pad_id=0, **kwargs)


def test_cut_at_eos_keeps_the_eos_and_drops_what_follows() -> None:
    assert cut_at_eos([5, 6, 2, 0, 0], {2}) == ([5, 6, 2], True)
    assert cut_at_eos([5, 6, 7], {2}) == ([5, 6, 7], False)


def test_same_seed_same_samples_whatever_else_was_sampled_before(model) -> None:
    prompts = [[10, 11, 12], [13, 14]]
    first = engine(model).generate([RolloutRequest(prompts, seed=7)], PARAMS)
    engine(model).generate([RolloutRequest(prompts, seed=99)], PARAMS)  # moves the global RNG on
    again = engine(model).generate([RolloutRequest(prompts, seed=7)], PARAMS)
    assert [r.completion_ids for r in first] == [r.completion_ids for r in again]
    assert [r.prompt_ids for r in first] == prompts
    for rollout in first:
        assert 0 < len(rollout.completion_ids) <= PARAMS.max_new_tokens
        assert rollout.finished == (rollout.completion_ids[-1] == model.generation_config.eos_token_id)


def test_static_cache_pads_prompts_to_a_width_bucket(model) -> None:
    ids, mask = left_pad([[1, 2, 3], [4]], pad_id=0, bucket=PROMPT_WIDTH_BUCKET)
    assert ids.shape == (2, PROMPT_WIDTH_BUCKET) and mask[0].sum() == 3 and mask[1].sum() == 1
    rollouts = engine(model, static_cache=True).generate([RolloutRequest([[10, 11, 12]], seed=1)], PARAMS)
    assert rollouts[0].prompt_ids == [10, 11, 12] and rollouts[0].completion_ids
