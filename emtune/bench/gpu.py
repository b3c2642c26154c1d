"""`make bench-gpu`: the EM step of the real shapes (random weights) on one GPU, against the seed's way.

Sized for the device machine: one short run, torch + transformers + accelerate only (no DeepSpeed there, and
vLLM only where it imports), nothing downloaded. For each shape it prints the seed-style step (one micro-batch
timed and scaled to the step), emtune's step with the `hf` engine (static cache, compiled decode; one warm-up
step compiles it first), its rollout tokens/s and loss + update time, and the ratio to the seed; then the
entropy loss's peak memory at micro-batch 8 x 4k tokens against the full-vocabulary float32 formula; and the
`vllm` engine's weight sync and rollout time where vLLM imports (a message where it does not).

    python -m emtune.bench.gpu [--shapes qwen2.5-math-1.5b,qwen2.5-math-7b] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from emtune.bench.em_step import seed_style_step, synchronize
from emtune.config import load_config
from emtune.losses import position_entropy
from emtune.model.shapes import SHAPES
from emtune.train.rollout import RolloutRequest, batch_seed
from emtune.train.trainer import Trainer

GIB = 1024**3


def _timed(call: Any) -> tuple[Any, float]:
    synchronize()
    started = time.perf_counter()
    result = call()
    synchronize()
    return result, time.perf_counter() - started


def compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def loss_peak_memory(vocab: int, batch: int = 8, tokens: int = 4096, chunk_tokens: int = 1024) -> dict[str, Any]:
    """Peak memory of the entropy loss's forward + backward over bf16 logits [batch, tokens, vocab], beyond the
    logits themselves, against one float32 [batch x tokens x vocab] tensor (what a full-vocabulary fp32
    softmax allocates at least once; the seed's keeps probabilities and their log for backward)."""
    logits = torch.randn(batch, tokens, vocab, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    mask = torch.ones(batch, tokens, dtype=torch.bool, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    (_, seconds) = _timed(lambda: position_entropy(logits, mask, 1.0, chunk_tokens).sum().backward())
    peak = torch.cuda.max_memory_allocated() - base
    formula = batch * tokens * vocab * 4
    gradient = batch * tokens * vocab * 2  # the logits' own bf16 gradient, which any loss produces
    return {
        "shape": f"{batch} x {tokens} tokens x {vocab} vocab",
        "peak_gib": peak / GIB,
        "logits_grad_gib": gradient / GIB,
        "fp32_full_vocab_gib": formula / GIB,
        "ratio_to_fp32_formula": peak / formula,
        "seconds": seconds,
    }


def bench_vllm(trainer: Trainer, samples: int) -> dict[str, Any]:
    """The vllm engine beside the trainer: its start, one weight sync and one step's rollouts."""
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"vLLM does not import here ({exc}); its figures need a GPU environment with vLLM"}
    from emtune.train.rollout_vllm import VLLMRolloutEngine

    t = trainer.cfg.train
    model = trainer.accelerator.unwrap_model(trainer.model)
    with tempfile.TemporaryDirectory() as folder:
        model.config.save_pretrained(folder)  # the engine starts on dummy weights; the sync brings the real ones
        trainer.tokenizer.save_pretrained(folder)
        engine, start_s = _timed(
            lambda: VLLMRolloutEngine(
                folder,
                eos_ids=trainer.eos_ids,
                dtype="bfloat16",
                max_model_len=t.max_prompt_tokens + t.max_new_tokens,
                max_num_seqs=samples,
                gpu_memory_utilization=t.vllm_gpu_memory_utilization,
                sleep=False,
                sync_bucket_mb=t.vllm_sync_bucket_mb,
                seed=0,
                world_size=1,
            )
        )
        _, sync_s = _timed(lambda: engine.sync_weights(model))
    requests = [RolloutRequest(trainer.prompts_for_step(1)[:samples], batch_seed(0, 1, 0))]
    engine.generate(requests, trainer.params)  # warm-up
    rollouts, rollout_s = _timed(lambda: engine.generate(requests, trainer.params))
    generated = sum(len(r.completion_ids) for r in rollouts)
    return {"start_s": start_s, "sync_s": sync_s, "rollout_s": rollout_s, "rollout_tokens_per_s": generated / rollout_s}


def bench_shape(model: str, samples: int, new_tokens: int, micro: int, with_vllm: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(
            None,
            {
                "model.path": model,
                "train.prompts": "builtin:demo",
                "run.out_dir": out,
                "train.rollouts_per_step": samples,
                "train.rollout_batch_size": samples,
                "train.micro_batch_size": micro,
                "train.max_new_tokens": new_tokens,
                "train.temperature": 0.5,
                "train.top_p": 0.95,
                "train.repetition_penalty": 1.15,
                "train.loss_temperature": 0.5,
                "train.static_cache": "on",
                "train.learning_rate": 1e-12,  # timing only: keep the weights (and so the sample lengths) unchanged
                "train.precision": "bf16",
                "model.dtype": "bfloat16",
            },
        )
        trainer = Trainer(cfg)
        graphs = compiled_graphs()
        _, warm_s = _timed(lambda: trainer.train_step(1))  # compiles the decode graph
        compiled = compiled_graphs() - graphs
        metrics, step_s = _timed(lambda: trainer.train_step(1))
        recompiled = compiled_graphs() - graphs - compiled
        seed = seed_style_step(trainer, samples, micro, measured=1)
        generated = metrics["completion_tokens_mean"] * samples
        result = {
            "model": model,
            "warmup_step_s": warm_s,
            "decode_graphs_compiled": compiled,
            "graphs_recompiled_in_timed_step": recompiled,
            "emtune_step_s": step_s,
            "rollout_s": metrics["sample_s"],
            "rollout_tokens_per_s": generated / metrics["sample_s"],
            "loss_and_update_s": step_s - metrics["sample_s"],
            "seed_step_s": seed.seconds,
            "seed_step_name": seed.name,
            "ratio_to_seed": seed.seconds / step_s,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / GIB if torch.cuda.is_available() else None,
        }
        if with_vllm:
            result["vllm"] = bench_vllm(trainer, samples)
        return result


def release_memory() -> None:
    """Give back what the last shape held (the trainer keeps reference cycles) before the next one."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="qwen2.5-math-1.5b,qwen2.5-math-7b", help=f"from {', '.join(SHAPES)}")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--micro", type=int, default=2, help="micro-batch of both steps (the seed's: 2)")
    parser.add_argument("--no-vllm", action="store_true", help="skip the vllm engine even where it imports")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench-gpu needs a CUDA device", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name()
    report: dict[str, Any] = {"device": device, "torch": torch.__version__, "shapes": []}
    print(f"device: {device}, torch {torch.__version__}", flush=True)
    loss = loss_peak_memory(vocab=max(SHAPES[s]["vocab_size"] for s in args.shapes.split(",")))
    report["loss_memory"] = loss
    release_memory()
    print(
        f"loss fwd+bwd, {loss['shape']}: peak {loss['peak_gib']:.2f} GiB beyond the logits (of which their bf16 "
        f"gradient {loss['logits_grad_gib']:.2f}) vs full-vocab fp32 formula {loss['fp32_full_vocab_gib']:.2f} GiB "
        f"= {loss['ratio_to_fp32_formula']:.2f}x; {loss['seconds']:.2f} s",
        flush=True,
    )
    for shape in args.shapes.split(","):
        row = bench_shape(f"random:{shape}", args.samples, args.new_tokens, args.micro, not args.no_vllm)
        report["shapes"].append(row)
        release_memory()
        print(
            f"{shape}: emtune step {row['emtune_step_s']:.2f} s (rollouts {row['rollout_s']:.2f} s, "
            f"{row['rollout_tokens_per_s']:.0f} tok/s; loss + update {row['loss_and_update_s']:.2f} s; "
            f"{row['decode_graphs_compiled']} graphs compiled in warm-up, {row['graphs_recompiled_in_timed_step']} "
            f"after) | {row['seed_step_name']}: {row['seed_step_s']:.1f} s | ratio to seed {row['ratio_to_seed']:.1f}x"
            f" | peak {row['peak_memory_gib']:.1f} GiB",
            flush=True,
        )
        if "vllm" in row:
            print(f"{shape} vllm engine: {json.dumps(row['vllm'])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
