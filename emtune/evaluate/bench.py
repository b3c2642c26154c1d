"""`emtune bench eval`: generated tokens/s per backend and graded items/s, each against a baseline measured in
the same run — hf one prompt at a time vs batched (and vLLM, when a vLLM environment is given), grading in one
process vs the pool."""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from emtune.config import RunConfig
from emtune.evaluate.backends.vllm import VLLM_PYTHON_ENV
from emtune.evaluate.grading import Grader, default_workers
from emtune.evaluate.runner import METRICS_FILE, run

BENCH_NAME = "bench-arith"


@dataclass(frozen=True)
class Measurement:
    name: str
    unit: str  # "tokens/s" or "items/s"
    rate: float
    baseline: str  # the measurement this one is compared with (its own name for a baseline)


def _write_benchmark(folder: Path, count: int) -> Path:
    """A synthetic arithmetic benchmark and its spec; the spec's path is the benchmark's name for `eval`."""
    rng = random.Random(0)
    rows = []
    for _ in range(count):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        rows.append(json.dumps({"problem": f"What is {a} + {b}?", "answer": str(a + b)}))
    (folder / f"{BENCH_NAME}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    spec = folder / f"{BENCH_NAME}.yaml"
    spec.write_text(
        f"name: {BENCH_NAME}\nsource: {BENCH_NAME}.jsonl\nquestion_field: problem\nanswer: answer\n", encoding="utf-8"
    )
    return spec


def _generation_cfg(cfg: RunConfig, batch_size: int, backend: str) -> RunConfig:
    return cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"backend": backend, "batch_size": batch_size})})


def _tokens_per_s(out: Path) -> float:
    (metrics_file,) = out.glob(f"*/*/{METRICS_FILE}")
    return float(json.loads(metrics_file.read_text(encoding="utf-8"))["tokens_per_s"])


def _hf_rate(cfg: RunConfig, model: str, spec: Path, batch_size: int, out: Path) -> float:
    return _tokens_per_s(run(_generation_cfg(cfg, batch_size, "hf"), [model], [str(spec)], out))


def _vllm_rate(cfg: RunConfig, model: str, spec: Path, out: Path) -> float:
    """vLLM runs in the environment EMTUNE_VLLM_PYTHON names (its pins differ from ours)."""
    return _tokens_per_s(run(_generation_cfg(cfg, cfg.eval.batch_size, "vllm"), [model], [str(spec)], out))


def _grading_items(count: int) -> list[tuple[str, str]]:
    forms = [
        (r"\frac{1}{2}", "0.5"),
        (r"3\sqrt{2}", r"\sqrt{18}"),
        ("(x+1)^2", "x^2+2x+1"),
        ("[0,1)", "(0,1)"),
        (r"10\%", "10"),
        (r"\text{(B)}", "C"),
    ]
    return [(f"so the answer is \\boxed{{{pred}}}", gold) for gold, pred in (forms * count)[:count]]


def _grading_rate(items: list[tuple[str, str]], workers: int, timeout_s: float) -> float:
    with Grader(timeout_s, workers) as grader:
        grader.grade(items[: workers * 2])  # workers started and math-verify imported before the clock runs
        started = time.perf_counter()
        grader.grade(items)
        return len(items) / (time.perf_counter() - started)


def bench_eval(cfg: RunConfig, model: str, problems: int, grading_items: int, batch_size: int) -> list[Measurement]:
    """Every measurement, baselines first; vLLM only when EMTUNE_VLLM_PYTHON names its environment."""
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"limit": problems})})
    results = []
    with tempfile.TemporaryDirectory(prefix="emtune-bench-eval-") as tmp:
        spec = _write_benchmark(Path(tmp), problems)
        single = "hf batch 1"
        results.append(Measurement(single, "tokens/s", _hf_rate(cfg, model, spec, 1, Path(tmp) / "hf-1"), single))
        rate = _hf_rate(cfg, model, spec, batch_size, Path(tmp) / "hf-batched")
        results.append(Measurement(f"hf batch {batch_size}", "tokens/s", rate, single))
        if os.environ.get(VLLM_PYTHON_ENV):
            results.append(Measurement("vllm", "tokens/s", _vllm_rate(cfg, model, spec, Path(tmp) / "vllm"), single))
    items = _grading_items(grading_items)
    serial = "grading 1 process"
    results.append(Measurement(serial, "items/s", _grading_rate(items, 1, cfg.eval.grading_timeout_s), serial))
    workers = cfg.eval.grading_workers or default_workers()
    rate = _grading_rate(items, workers, cfg.eval.grading_timeout_s)
    results.append(Measurement(f"grading {workers} processes", "items/s", rate, serial))
    return results
