"""Batched, left-padded KV-cache `generate`: the one call training rollouts and the evaluation `hf` backend share.

Sampling comes from the caller alone. `generate()` fills every field the call leaves unset from the model's
`generation_config` (a checkpoint's repetition_penalty, top_k, min_p, ...), so for the call the model carries a
neutral one that keeps only its stop tokens, as vLLM does; the model's own is put back afterwards (it is saved
with every checkpoint).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from jinja2 import TemplateError
from transformers import GenerationConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# The static cache (and the decode graph compiled for it) is sized by prompt width + new tokens: padding widths up
# to a bucket keeps that size, and so the compiled graph, across batches.
PROMPT_WIDTH_BUCKET = 64


def stop_token_ids(model: Any, tokenizer_eos: int | None) -> list[int]:
    """The tokens that end a completion: the model's configured EOS id(s) and the tokenizer's."""
    return eos_ids_of(getattr(model.generation_config, "eos_token_id", None), tokenizer_eos)


def eos_ids_of(configured: int | list[int] | None, tokenizer_eos: int | None) -> list[int]:
    """A generation config's `eos_token_id` (one id, a list or None) and the tokenizer's EOS, as one sorted list."""
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer_eos)
    return sorted(i for i in ids if i is not None)


_TURN_MARKER = "emtune-end-of-turn-probe"


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The special token the chat template closes an assistant turn with (Qwen's `<|im_end|>`), found by
    rendering a reply and reading the token right after it; None without a chat template or such a token.

    A base checkpoint can name only `<|endoftext|>` as its EOS while its chat template ends turns with another
    token: a chat-prompted model then stops at neither and runs to the length limit."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [{"role": "user", "content": "?"}, {"role": "assistant", "content": _TURN_MARKER}]
    try:
        text = str(tokenizer.apply_chat_template(messages, tokenize=False))
    except (TemplateError, ValueError):  # a template that refuses this conversation (one demanding a system turn)
        return None
    _, found, after = text.partition(_TURN_MARKER)
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if found else []
    # A special token: named in the tokenizer's special-tokens map, or an added token marked special (Qwen's
    # `<|im_end|>` is only the latter once the EOS names `<|endoftext|>`).
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    if ids and ids[0] in special:
        return int(ids[0])
    return None


def completion_stop_ids(configured_eos: int | list[int] | None, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """What ends an evaluation completion in either backend: the model's configured EOS id(s), the tokenizer's
    EOS and the chat template's end-of-turn token."""
    turn_end = end_of_turn_id(tokenizer)
    return sorted({*eos_ids_of(configured_eos, tokenizer.eos_token_id), *([] if turn_end is None else [turn_end])})


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


def _pads_as_own_tokens(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`ids` with each row's padding replaced by that row's first real token. transformers (before 5.25)
    penalises every id in `input_ids` for repetition, pads included: where pad = EOS (Qwen base tokenizers) a
    padded row would push EOS down and run longer than the same prompt alone. Masked positions are never attended
    to, so what they hold changes nothing else; holding an id the row already has, they add none to the penalty."""
    first_real = mask.argmax(dim=1, keepdim=True)
    return torch.where(mask.bool(), ids, ids.gather(1, first_real))


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
    if repetition_penalty != 1.0:
        ids = _pads_as_own_tokens(ids, mask)
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
