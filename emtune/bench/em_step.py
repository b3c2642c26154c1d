"""One EM step, the seed's way versus emtune's, on the same model, prompt, sample count, length limit and sampling.

The seed's way: for each micro-batch of 2, sample with `generate(use_cache=False)` (every decode step re-runs
the whole sequence), then the loss from a full-vocabulary softmax over every position from the prompt end on,
then backward; one optimizer update after all micro-batches. emtune's way is `Trainer.train_step`: all
rollouts in batched KV-cache generate calls, then the chunked loss. Both sample with the research code's
parameters (T 0.5, top-p 0.95, top-k 50, repetition penalty 1.15) and stop at EOS; repetitions alternate between
the two, so a machine that slows down in between slows both, and the medians are reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

from emtune.config import load_config
from emtune.train.trainer import Trainer


@dataclass(frozen=True)
class StepTiming:
    name: str
    seconds: float
    generated_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds


def synchronize() -> None:
    """CUDA runs asynchronously: wait for the device before reading the clock."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def seed_style_step(trainer: Trainer, samples: int, micro: int, measured: int | None = None) -> StepTiming:
    """The baseline: two-at-a-time sampling without a KV cache, full-softmax loss, one update.

    With `measured`, only that many micro-batches run and the time is scaled to all `samples // micro` of them
    (on a GPU the full seed-style step of a 1.5B model takes tens of minutes); the name says so.
    """
    total = samples // micro
    runs = min(measured or total, total)
    t = trainer.cfg.train
    model = trainer.accelerator.unwrap_model(trainer.model)
    prompt = torch.tensor([trainer.prompt_ids[0]] * micro, device=trainer.accelerator.device)
    width = prompt.shape[1]
    generated = 0
    synchronize()
    started = time.perf_counter()
    for _ in range(runs):
        model.eval()
        with torch.no_grad():
            sequences = model.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True, use_cache=False,
                temperature=t.temperature, top_p=t.top_p, top_k=t.top_k, repetition_penalty=t.repetition_penalty,
                max_new_tokens=t.max_new_tokens, eos_token_id=trainer.eos_ids,
                pad_token_id=trainer.tokenizer.pad_token_id,
            )  # fmt: skip
        model.train()
        # Rows that stopped early are padded after their EOS; the pads are neither generated nor in the loss.
        real = _up_to_eos(sequences[:, width:], set(trainer.eos_ids))
        generated += int(real.sum())
        logits = model(input_ids=sequences, attention_mask=torch.ones_like(sequences)).logits
        probs = torch.softmax(logits.float() / t.loss_temperature, dim=-1)
        entropy = -(probs * torch.log(probs + 1e-12)).sum(-1)
        mask = torch.zeros_like(entropy)
        mask[:, width:] = real.float()
        ((entropy * mask).sum() / mask.sum()).backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    synchronize()
    seconds, scale = time.perf_counter() - started, total / runs
    name = f"seed-style (no KV cache, micro-batch {micro})"
    if runs < total:
        name += f", {runs} of {total} micro-batches timed and scaled"
    return StepTiming(name, seconds * scale, round(generated * scale))


def _up_to_eos(completions: torch.Tensor, eos_ids: set[int]) -> torch.Tensor:
    """Bool [B, N]: each row's tokens up to and including its first EOS."""
    is_eos = torch.zeros_like(completions, dtype=torch.bool)
    for eos in eos_ids:
        is_eos |= completions == eos
    after = is_eos.long().cumsum(dim=1) - is_eos.long()  # EOS seen strictly before this position
    return after == 0


def emtune_step(trainer: Trainer) -> StepTiming:
    synchronize()
    started = time.perf_counter()
    metrics = trainer.train_step(1)
    synchronize()
    seconds = time.perf_counter() - started
    generated = round(metrics["completion_tokens_mean"] * trainer.cfg.train.rollouts_per_step)
    return StepTiming("emtune (batched KV-cache rollouts, chunked loss)", seconds, generated)


def _median(timings: list[StepTiming]) -> StepTiming:
    return StepTiming(
        timings[0].name,
        statistics.median(t.seconds for t in timings),
        round(statistics.median(t.generated_tokens for t in timings)),
    )


def run(
    model: str = "builtin:tiny",
    samples: int = 64,
    new_tokens: int = 512,
    micro: int = 2,
    repeats: int = 3,
    baseline_micro_batches: int | None = None,
    precision: str = "fp32",
    prompts: str = "builtin:demo",
) -> dict[str, Any]:
    """Time both steps `repeats` times, alternating (after one warm-up each); the medians and their ratio."""
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(None, {
            "model.path": model, "train.prompts": prompts, "run.out_dir": out,
            "train.rollouts_per_step": samples, "train.rollout_batch_size": samples, "train.micro_batch_size": micro,
            "train.max_new_tokens": new_tokens, "train.temperature": 0.5, "train.top_p": 0.95, "train.top_k": 50,
            "train.repetition_penalty": 1.15, "train.loss_temperature": 0.5,
            "train.learning_rate": 1e-12,  # timing only: keep the model (and so the sample lengths) unchanged
            "train.precision": precision, "model.dtype": "bfloat16" if precision == "bf16" else "float32",
        })  # fmt: skip
        trainer = Trainer(cfg)
        seed_style_step(trainer, micro, micro)
        emtune_step(trainer)
        seeds: list[StepTiming] = []
        ours: list[StepTiming] = []
        for repeat in range(repeats):
            # Alternate which side goes first, so neither always runs right after the other's warm caches.
            pair = [lambda: seeds.append(seed_style_step(trainer, samples, micro, baseline_micro_batches)),
                    lambda: ours.append(emtune_step(trainer))]  # fmt: skip
            for timed in pair if repeat % 2 == 0 else pair[::-1]:
                timed()
    seed, mine = _median(seeds), _median(ours)
    return {
        "model": model,
        "samples": samples,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "baseline": seed,
        "emtune": mine,
        "speedup": seed.seconds / mine.seconds,
        "throughput_ratio": mine.tokens_per_s / seed.tokens_per_s,
    }
