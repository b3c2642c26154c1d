"""Batched, left-padded KV-cache `generate`: the one call training rollouts and the evaluation `hf` backend share.

Sampling comes from the caller alone. `generate()` fills every field the call leaves unset from the model's
`generation_config` (a checkpoint's repetition_penalty, top_k, min_p, ...), so for the call the model carries a
neutral one that keeps only its stop tokens, as vLLM does; the model's own is put back afterwards (it is saved
with every checkpoint).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from transformers import GenerationConfig

# The static cache (and the decode graph compiled for it) is sized by prompt width + new tokens: padding widths up
# to a bucket keeps that size, and so the compiled graph, across batches.
PROMPT_WIDTH_BUCKET = 64


def stop_token_ids(model: Any, tokenizer_eos: int | None) -> list[int]:
    """The tokens that end a completion: the model's configured EOS id(s) and the tokenizer's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer_eos)
    return sorted(i for i in ids if i is not None)


def cut_at_eos(tokens: list[int], eos_ids: set[int]) -> tuple[list[int], bool]:
    """The completion up to and including its first EOS, and whether it had one."""
    for index, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: index + 1], True
    return tokens, False


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, bucket: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask, prompts right-aligned; the width rounded up to a multiple of `bucket`."""
    width = -(-max(len(p) for p in prompts) // bucket) * bucket
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


@contextlib.contextmanager
def _neutral_defaults(model: Any, eos_ids: list[int], pad_id: int) -> Iterator[None]:
    # A peft wrapper copies its own generation_config onto the wrapped model inside generate(): set both.
    owners = [model, *([model.get_base_model()] if hasattr(model, "get_base_model") else [])]
    saved = [owner.generation_config for owner in owners]
    for owner in owners:
        owner.generation_config = GenerationConfig(eos_token_id=eos_ids, pad_token_id=pad_id)
    try:
        yield
    finally:
        for owner, config in zip(owners, saved, strict=True):
            owner.generation_config = config


@torch.no_grad()
def generate_batch(
    model: Any,  # a transformers causal LM (possibly peft-wrapped): anything with .generate
    prompts: Sequence[Sequence[int]],
    *,
    seed: int,
    eos_ids: Iterable[int],
    pad_id: int,
    max_new_tokens: int,
    temperature: float,  # 0: greedy
    top_p: float = 1.0,
    top_k: int = 0,  # 0: off
    repetition_penalty: float = 1.0,
    static_cache: bool = False,
    synced_gpus: bool = False,
) -> list[tuple[list[int], bool]]:
    """One `generate` over `prompts`, seeded: each row's completion (cut after its first EOS) and whether it
    ended with EOS (False: it ran to `max_new_tokens`)."""
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id, PROMPT_WIDTH_BUCKET if static_cache else 1)
    stops = sorted(set(eos_ids))
    sampled = temperature > 0
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sampled,
        temperature=temperature if sampled else 1.0,
        top_p=top_p if sampled else 1.0,
        top_k=top_k,  # explicit 0, not None: None would take transformers' default of 50
        repetition_penalty=repetition_penalty,
        pad_token_id=pad_id,
        eos_token_id=stops,
        use_cache=True,
        cache_implementation="static" if static_cache else None,
    )
    torch.manual_seed(seed)
    with _neutral_defaults(model, stops, pad_id):
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config, synced_gpus=synced_gpus
        )
    return [cut_at_eos(row, set(stops)) for row in out[:, ids.shape[1] :].tolist()]
