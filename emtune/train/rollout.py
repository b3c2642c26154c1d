"""Rollout engines: prompts and sampling parameters in, completion token ids out.

The trainer only sees `RolloutEngine`. The transformers engine samples with the training model itself
(nothing to sync); an engine that holds its own copy of the weights (vLLM, `rollout_vllm`) implements
`sync_weights` and reports the log-probs it sampled with, which the trainer checks against its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

log = logging.getLogger(__name__)

PROMPT_WIDTH_BUCKET = 64


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    max_new_tokens: int


@dataclass(frozen=True)
class Rollout:
    prompt_ids: list[int]
    completion_ids: list[int]  # up to and including EOS; nothing after it
    finished: bool  # True when the completion ended with EOS, False when it hit max_new_tokens
    # The engine's log-prob of each completion token under its (unmodified) next-token distribution; None
    # when the engine samples with the training model itself and there is nothing to cross-check.
    logprobs: list[float] | None = None


@dataclass(frozen=True)
class RolloutRequest:
    """One generate batch: the prompts, and the seed that makes its samples reproducible."""

    prompts: list[list[int]]
    seed: int


class RolloutEngine(Protocol):
    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Rollout]: ...

    def sync_weights(self, model: torch.nn.Module) -> None: ...


def batch_seed(seed: int, step: int, first_rollout: int) -> int:
    """Seed of the generate batch that starts at global rollout index `first_rollout` of `step`.

    Samples depend on (seed, step, batch start, batch size) only, so one process or N processes that each
    generate their share produce the same rollouts, and a resumed run re-samples exactly.
    """
    digest = hashlib.sha256(f"{seed}:{step}:{first_rollout}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def cut_at_eos(tokens: list[int], eos_ids: set[int]) -> tuple[list[int], bool]:
    for index, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: index + 1], True
    return tokens, False


def zero3_weights_fit(engine: Any) -> bool:
    """Whether the full (unpartitioned) weights of a ZeRO-3 engine fit in free accelerator memory on every
    rank, with room to spare for the KV cache; always true on the CPU (the gathered copy is in host memory).
    Every rank gets the same answer, since the gather is a collective."""
    if not torch.cuda.is_available():
        return True
    full = sum(p.ds_numel * p.element_size() for p in engine.module.parameters())
    free, _ = torch.cuda.mem_get_info()
    fits = torch.tensor(int(full < 0.7 * free), device="cuda")
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(fits, op=torch.distributed.ReduceOp.MIN)
    return bool(fits.item())


@contextlib.contextmanager
def zero3_gathered(engine: Any) -> Iterator[None]:
    """ZeRO-3: all-gather the full weights once for a whole rollout phase and lift the per-module fetch hooks,
    instead of all-gathering every layer for every decoded token (DeepSpeed's own helper does both)."""
    from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation

    with unwrap_model_for_generation(engine):
        yield


class HFRolloutEngine:
    """Batched `generate` with the KV cache on the training model; static cache + compiled decode on CUDA.

    Under ZeRO-3 (`zero3_engine`, the DeepSpeed engine wrapping `model`) the weights are gathered once per
    rollout phase when they fit; otherwise every rank all-gathers layer by layer, in lock-step (synced_gpus).
    """

    def __init__(
        self,
        model: Any,  # a transformers causal LM (possibly peft-wrapped): anything with .generate
        eos_ids: Sequence[int],
        pad_id: int,
        static_cache: bool = False,
        zero3_engine: Any = None,
        multi_rank: bool = False,
    ) -> None:
        self.model = model
        self.eos_ids = set(eos_ids)
        self.pad_id = pad_id
        self.static_cache = static_cache
        self.zero3_engine = zero3_engine
        self.multi_rank = multi_rank
        self.gather_once = zero3_engine is not None and zero3_weights_fit(zero3_engine)
        if zero3_engine is not None and not self.gather_once:
            log.warning("ZeRO-3 weights do not fit gathered: rollouts all-gather layer by layer (slow)")

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Nothing to do: the engine samples with the very module being trained."""

    def _left_pad(self, prompts: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        if self.static_cache:
            # The static cache (and the decode graph compiled for it) is sized by prompt width + new tokens:
            # padding widths up to a bucket keeps that size, and so the compiled graph, across batches.
            width = -(-width // PROMPT_WIDTH_BUCKET) * PROMPT_WIDTH_BUCKET
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        return ids.to(device), mask.to(device)

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    def _weights(self) -> contextlib.AbstractContextManager[None]:
        return zero3_gathered(self.zero3_engine) if self.gather_once else contextlib.nullcontext()

    @torch.no_grad()
    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Rollout]:
        device = next(self.model.parameters()).device
        # Partitioned weights are fetched by collectives inside forward: ranks must step together.
        synced_gpus = self.zero3_engine is not None and self.multi_rank and not self.gather_once
        rollouts: list[Rollout] = []
        with self._eval_mode(), self._weights():
            for request in requests:
                ids, mask = self._left_pad(request.prompts, device)
                torch.manual_seed(request.seed)
                out = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    do_sample=True,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k or None,
                    repetition_penalty=params.repetition_penalty,
                    max_new_tokens=params.max_new_tokens,
                    pad_token_id=self.pad_id,
                    eos_token_id=sorted(self.eos_ids),
                    use_cache=True,
                    cache_implementation="static" if self.static_cache else None,
                    synced_gpus=synced_gpus,
                )
                for prompt, row in zip(request.prompts, out[:, ids.shape[1] :].tolist(), strict=True):
                    completion, finished = cut_at_eos(row, self.eos_ids)
                    rollouts.append(Rollout(prompt_ids=list(prompt), completion_ids=completion, finished=finished))
        return rollouts
