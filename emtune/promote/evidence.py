"""Per-problem scores of every evaluated (step, benchmark) pair, read from what `emtune eval` wrote: each pair's
metrics.json and, beside it, its graded samples (samples.jsonl, greedy_samples.jsonl)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emtune.errors import DataError
from emtune.evaluate.passk import pass_at_k
from emtune.evaluate.runner import GREEDY_SAMPLES_FILE, METRICS_FILE, SAMPLES_FILE
from emtune.fsutil import read_jsonl


@dataclass(frozen=True)
class PairScores:
    """One (checkpoint, benchmark) pair: the metric's value per problem id, and what eval recorded about it."""

    label: str
    step: int
    benchmark: str
    model: str  # what was evaluated: the base model's path, or the step's store URI
    per_problem: dict[str, float]
    protocol: dict[str, Any] = field(default_factory=dict)  # eval settings (n, temperature, ...)

    @property
    def mean(self) -> float:
        return sum(self.per_problem.values()) / len(self.per_problem) if self.per_problem else 0.0


def _per_problem(samples: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """The metric per problem: the share of correct samples (avg@n, greedy) or the unbiased pass@k."""
    correct: dict[str, list[bool]] = defaultdict(list)
    for record in samples:
        correct[str(record["id"])].append(bool(record["correct"]))
    if not metric.startswith("pass@"):
        return {pid: sum(row) / len(row) for pid, row in correct.items()}
    k = int(metric.removeprefix("pass@"))
    return {pid: pass_at_k(len(row), sum(row), k) if k <= len(row) else float("nan") for pid, row in correct.items()}


def collect_scores(eval_dirs: list[Path], metric: str) -> list[PairScores]:
    """Every pair under `eval_dirs` with the metric's per-problem values; a pair without them is an error."""
    pairs: dict[tuple[int, str], PairScores] = {}
    for root in eval_dirs:
        for metrics_file in sorted(Path(root).rglob(METRICS_FILE)):
            record = json.loads(metrics_file.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not {"label", "step", "benchmark"} <= record.keys():
                continue  # not an eval pair's metrics (e.g. a report's)
            samples_file = metrics_file.with_name(GREEDY_SAMPLES_FILE if metric == "greedy" else SAMPLES_FILE)
            if not samples_file.is_file():
                raise DataError(
                    f"promote.metric {metric!r} needs {samples_file.name} beside {metrics_file}"
                    + (" (set eval.greedy: true)" if metric == "greedy" else "")
                )
            per_problem = _per_problem(read_jsonl(samples_file), metric)
            if any(value != value for value in per_problem.values()):  # NaN: k above the samples per problem
                raise DataError(f"promote.metric {metric!r} needs at least that many samples (eval.n) per problem")
            pair = PairScores(
                label=str(record["label"]),
                step=int(record["step"]),
                benchmark=str(record["benchmark"]),
                model=str(record.get("model", "")),
                per_problem=per_problem,
                protocol=dict(record.get("protocol") or {}),
            )
            pairs[(pair.step, pair.benchmark)] = pair
    return list(pairs.values())
