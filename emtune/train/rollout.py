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

from emtune.model.generate import generate_batch

log = logging.getLogger(__name__)


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

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Rollout]:
        # Partitioned weights are fetched by collectives inside forward: ranks must step together.
        synced_gpus = self.zero3_engine is not None and self.multi_rank and not self.gather_once
        rollouts: list[Rollout] = []
        with self._eval_mode(), self._weights():
            for request in requests:
                completions = generate_batch(
                    self.model, request.prompts, seed=request.seed, eos_ids=self.eos_ids, pad_id=self.pad_id,
                    max_new_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
                    top_k=params.top_k, repetition_penalty=params.repetition_penalty,
                    static_cache=self.static_cache, synced_gpus=synced_gpus,
                )  # fmt: skip
                rollouts += [
                    Rollout(prompt_ids=list(prompt), completion_ids=completion, finished=finished)
                    for prompt, (completion, finished) in zip(request.prompts, completions, strict=True)
                ]
        return rollouts
