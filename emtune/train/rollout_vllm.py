"""The vLLM rollout engine: a vLLM engine inside the training process, sharing its accelerator.

This is the colocated mode of TRL's GRPO trainer, verl and OpenRLHF. The points that make it correct:

- The engine core runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`; with several ranks, vLLM's
  `external_launcher` executor gives each rank an engine of its own), so new weights reach it as tensors
  through a direct call, never through a pickle or another process.
- After every optimizer update `sync_weights` streams the trainer's weights into the engine with vLLM's
  in-place reload (`reload_weights`, which redoes the kernel-format processing vLLM applies after loading,
  e.g. the CPU backend's packed GEMM weights): parameter buckets of about `vllm_sync_bucket_mb`, all-gathered
  bucket by bucket under ZeRO-3, LoRA adapters merged into the base weights first. Then the prefix cache is
  reset, since its KV blocks were computed with the old weights.
- Sampling follows the config (temperature, top_p, top_k, repetition penalty, max tokens) with one seed per
  rollout derived from the batch seed, and vLLM reports each sampled token's log-prob under the model's
  unmodified distribution (`raw_logprobs`), which the trainer compares with its own (the stale-sync guard).
- Sleep mode, when asked for, is level 1 only: weights are offloaded to host memory and restored unchanged,
  the KV cache is dropped. Level 2 discards the weights and needs a full reload on wake-up, the path where the
  anchors met stale-weight bugs; emtune never uses it. The engine wakes before a sync, so weights are always
  loaded into an awake engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from emtune.errors import ConfigError
from emtune.model.generate import cut_at_eos
from emtune.train.rollout import Rollout, RolloutRequest, SamplingParams

log = logging.getLogger(__name__)

SEED_MASK = 0x7FFF_FFFF_FFFF_FFFF


def sampling_kwargs(params: SamplingParams, seed: int, eos_ids: Iterable[int]) -> dict[str, Any]:
    """vLLM `SamplingParams` arguments for one rollout: the config's sampling, the rollout's own seed, and the
    log-prob of the sampled token (the `0` asks for no alternatives)."""
    return {
        "n": 1,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,  # 0 disables it in vLLM as in the config
        "repetition_penalty": params.repetition_penalty,
        "max_tokens": params.max_new_tokens,
        "stop_token_ids": sorted(eos_ids),
        "seed": seed & SEED_MASK,
        "logprobs": 0,
        "detokenize": False,
    }


def rollout_seeds(request: RolloutRequest) -> list[int]:
    """One seed per rollout of a request: the samples depend on (seed, step, rollout index) only."""
    return [(request.seed + index) & SEED_MASK for index in range(len(request.prompts))]


def hf_parameter_name(name: str) -> str | None:
    """The checkpoint name vLLM's loader expects for a trainer parameter; None for adapter-only tensors.

    A peft model's merged base weights live under `base_model.model.` and `.base_layer`; the LoRA factors
    themselves are already folded into them.
    """
    if "lora_" in name or ".original_module." in name:
        return None
    name = name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".")


def _is_zero3(parameter: torch.Tensor) -> bool:
    return hasattr(parameter, "ds_id")


def _nbytes(parameter: torch.Tensor) -> int:
    # A ZeRO-3 parameter holds an empty local tensor; its full size is ds_numel.
    return int(getattr(parameter, "ds_numel", parameter.numel())) * parameter.element_size()


def trainer_weights(model: torch.nn.Module, bucket_bytes: int) -> Iterator[tuple[str, torch.Tensor]]:
    """Every weight of `model` by checkpoint name, produced bucket by bucket.

    Under ZeRO-3 each bucket is all-gathered (a collective: every rank iterates the same buckets) and its
    tensors copied out before it is partitioned again, since vLLM holds on to a layer's weights until the
    whole layer has arrived. Otherwise the live tensors are handed over as they are.
    """
    named = [(hf_parameter_name(n), p) for n, p in model.named_parameters()]
    wanted = [(n, p) for n, p in named if n is not None]
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for index, (name, parameter) in enumerate(wanted):
        bucket.append((name, parameter))
        size += _nbytes(parameter)
        if size < bucket_bytes and index < len(wanted) - 1:
            continue
        if any(_is_zero3(p) for _, p in bucket):
            import deepspeed

            with deepspeed.zero.GatheredParameters([p for _, p in bucket]):
                gathered = [(n, p.detach().clone()) for n, p in bucket]
            yield from gathered
        else:
            yield from ((n, p.detach()) for n, p in bucket)
        bucket, size = [], 0


def refresh_tied_head(model: torch.nn.Module) -> None:
    """Redo the kernel-format processing of a tied LM head after an in-place reload.

    vLLM's reload processes a layer once all of its own weights have arrived; a head tied to the embedding
    receives none (its weight is the embedding's, which is updated in place), so a format derived from it at
    load time stays stale: the CPU backend's packed GEMM weights, for one. Run inside the engine's worker.
    """
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None or getattr(head, "weight", None) is not getattr(embed, "weight", None):
        return
    head.quant_method.process_weights_after_loading(head)


@contextlib.contextmanager
def merged_adapters(model: torch.nn.Module) -> Iterator[None]:
    """A peft model's adapters folded into its base weights for the duration (no-op for a plain model)."""
    if not hasattr(model, "merge_adapter"):
        yield
        return
    model.merge_adapter()  # type: ignore[operator]
    try:
        yield
    finally:
        model.unmerge_adapter()  # type: ignore[operator]


class VLLMRolloutEngine:
    """Rollouts sampled by an in-process vLLM engine that is handed the trainer's weights after every update."""

    def __init__(
        self,
        model_path: str,
        eos_ids: Sequence[int],
        dtype: str,
        max_model_len: int,
        max_num_seqs: int,
        gpu_memory_utilization: float,
        sleep: bool,
        sync_bucket_mb: int,
        seed: int,
        world_size: int,
        trust_remote_code: bool = False,
        load_format: str = "dummy",
    ) -> None:
        if sleep and not torch.cuda.is_available():
            raise ConfigError("train.vllm_sleep needs a CUDA device; vLLM's sleep mode does not run on the CPU")
        # In-process engine core: `sync_weights` hands tensors over by a direct call. Set before vLLM reads it.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ConfigError(
                f"train.rollout_engine 'vllm' needs vLLM installed in this environment ({exc}); allowed here: 'hf'"
            ) from None
        self.eos_ids = set(eos_ids)
        self.sleep_enabled = sleep
        self.asleep = False
        self.bucket_bytes = sync_bucket_mb * 1024 * 1024
        engine_args: dict[str, Any] = {
            "model": model_path,
            "dtype": dtype,
            "seed": seed,
            "max_model_len": max_model_len,
            "max_num_seqs": max_num_seqs,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enable_prefix_caching": True,  # one prompt, many samples: its KV blocks are computed once
            "enable_sleep_mode": sleep,
            "logprobs_mode": "raw_logprobs",
            "trust_remote_code": trust_remote_code,
            # The caller syncs the trainer's weights in before the first rollout: reading them from disk as
            # well would only double the start-up time. `model_path` needs its config and tokenizer only.
            "load_format": load_format,
        }
        if world_size > 1:
            # Each rank drives its own engine in its own process, in the trainer's process group.
            engine_args["distributed_executor_backend"] = "external_launcher"
        log.info("starting the vLLM rollout engine on %s", model_path)
        self.llm = LLM(**engine_args)

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Rollout]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        self._wake()
        prompts = [prompt for request in requests for prompt in request.prompts]
        seeds = [seed for request in requests for seed in rollout_seeds(request)]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=prompt) for prompt in prompts],
            [VLLMSamplingParams(**sampling_kwargs(params, seed, self.eos_ids)) for seed in seeds],
            use_tqdm=False,
        )
        rollouts = []
        for prompt, output in zip(prompts, outputs, strict=True):
            sample = output.outputs[0]
            completion, finished = cut_at_eos(list(sample.token_ids), self.eos_ids)
            logprobs = [sample.logprobs[i][token].logprob for i, token in enumerate(completion)]
            rollouts.append(Rollout(list(prompt), completion, finished, logprobs))
        if self.sleep_enabled:
            self.llm.sleep(level=1)  # the loss phase gets the memory; weights come back unchanged
            self.asleep = True
        return rollouts

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load the trainer's current weights into the engine and drop the prefix cache built on the old ones.

        Every rank calls it (the ZeRO-3 gather is a collective)."""
        self._wake()
        with merged_adapters(model):
            self.llm.collective_rpc(
                "reload_weights",
                kwargs={"weights_iterator": trainer_weights(model, self.bucket_bytes), "is_checkpoint_format": True},
            )
        self.llm.apply_model(refresh_tied_head)
        self.llm.reset_prefix_cache()
