"""One EM step, the seed's way versus emtune's, on the same model, prompt, sample count and length.

The seed's way: for each micro-batch of 2, sample with `generate(use_cache=False)` (every decode step re-runs
the whole sequence), then the loss from a full-vocabulary softmax over every position from the prompt end on,
then backward; one optimizer update after all micro-batches. emtune's way is `Trainer.train_step`: all
rollouts in batched KV-cache generate calls, then the chunked loss.
"""

from __future__ import annotations

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
                temperature=t.temperature, top_p=t.top_p, repetition_penalty=t.repetition_penalty,
                max_new_tokens=t.max_new_tokens, min_new_tokens=t.max_new_tokens,
                pad_token_id=trainer.tokenizer.pad_token_id,
            )  # fmt: skip
        model.train()
        generated += (sequences.shape[1] - width) * micro
        logits = model(input_ids=sequences, attention_mask=torch.ones_like(sequences)).logits
        probs = torch.softmax(logits.float() / t.loss_temperature, dim=-1)
        entropy = -(probs * torch.log(probs + 1e-12)).sum(-1)
        mask = torch.zeros_like(entropy)
        mask[:, width:] = 1.0
        ((entropy * mask).sum() / mask.sum()).backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    synchronize()
    seconds, scale = time.perf_counter() - started, total / runs
    name = f"seed-style (no KV cache, micro-batch {micro})"
    if runs < total:
        name += f", {runs} of {total} micro-batches timed and scaled"
    return StepTiming(name, seconds * scale, round(generated * scale))


def emtune_step(trainer: Trainer) -> StepTiming:
    synchronize()
    started = time.perf_counter()
    metrics = trainer.train_step(1)
    synchronize()
    seconds = time.perf_counter() - started
    generated = round(metrics["completion_tokens_mean"] * trainer.cfg.train.rollouts_per_step)
    return StepTiming("emtune (batched KV-cache rollouts, chunked loss)", seconds, generated)


def run(
    model: str = "builtin:tiny",
    samples: int = 64,
    new_tokens: int = 512,
    micro: int = 2,
    repeats: int = 1,
    baseline_micro_batches: int | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Time both steps `repeats` times (after one warm-up each) and return the best of each and the ratio."""
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(None, {
            "model.path": model, "train.prompts": "builtin:demo", "run.out_dir": out,
            "train.rollouts_per_step": samples, "train.rollout_batch_size": samples, "train.micro_batch_size": micro,
            "train.max_new_tokens": new_tokens, "train.temperature": 0.5, "train.top_p": 0.95,
            "train.repetition_penalty": 1.15, "train.loss_temperature": 0.5,
            "train.learning_rate": 1e-12,  # timing only: keep the model (and so the sample lengths) unchanged
            "train.precision": precision, "model.dtype": "bfloat16" if precision == "bf16" else "float32",
        })  # fmt: skip
        trainer = Trainer(cfg)
        # emtune's rollouts stop at EOS; the seed-style ones are forced to full length, which favours neither
        # side only if the model rarely stops early. Report the tokens each one actually generated.
        seed_style_step(trainer, micro, micro)
        emtune_step(trainer)
        seed = min(
            (seed_style_step(trainer, samples, micro, baseline_micro_batches) for _ in range(repeats)),
            key=lambda s: s.seconds,
        )
        ours = min((emtune_step(trainer) for _ in range(repeats)), key=lambda s: s.seconds)
    return {
        "model": model,
        "samples": samples,
        "new_tokens": new_tokens,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "baseline": seed,
        "emtune": ours,
        "speedup": seed.seconds / ours.seconds,
        "throughput_ratio": ours.tokens_per_s / seed.tokens_per_s,
    }
