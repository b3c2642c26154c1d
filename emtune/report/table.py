"""The benchmark × checkpoint accuracy table: unweighted average (as the paper reports), deltas against step
0, and the best step per benchmark. Benchmarks are grouped by kind (math, code, logic); with more than one kind,
each group gets its own average row too."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AVERAGE = "average"
KIND_ORDER = ("math", "code", "logic")


def kind_average(kind: str) -> str:
    return f"{kind} average"


@dataclass(frozen=True)
class Checkpoint:
    label: str
    step: int


@dataclass(frozen=True)
class ResultsTable:
    checkpoints: list[Checkpoint]  # by step, then label
    benchmarks: list[str]
    accuracy: dict[str, dict[str, float]]  # row (benchmark or AVERAGE) -> label -> accuracy in [0, 1]
    baseline: str | None  # label of the step-0 checkpoint the deltas are taken against
    kinds: dict[str, str] = field(default_factory=dict)  # benchmark -> its kind (math when the metrics name none)

    @property
    def rows(self) -> list[str]:
        groups = list(dict.fromkeys(self.kinds.get(b, "math") for b in self.benchmarks))
        if len(groups) < 2:
            return [*self.benchmarks, AVERAGE]
        rows: list[str] = []
        for kind in groups:
            rows += [b for b in self.benchmarks if self.kinds.get(b, "math") == kind] + [kind_average(kind)]
        return [*rows, AVERAGE]

    def delta(self, row: str, label: str) -> float | None:
        values = self.accuracy[row]
        if self.baseline is None or label == self.baseline or label not in values or self.baseline not in values:
            return None
        return values[label] - values[self.baseline]

    def best(self, row: str) -> Checkpoint | None:
        """The checkpoint with the highest accuracy on `row`; the earliest step wins a tie."""
        scored = [c for c in self.checkpoints if c.label in self.accuracy[row]]
        return max(scored, key=lambda c: (self.accuracy[row][c.label], -c.step), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoints": [{"label": c.label, "step": c.step} for c in self.checkpoints],
            "benchmarks": self.benchmarks,
            "accuracy": self.accuracy,
            "baseline": self.baseline,
            "kinds": self.kinds,
            "delta_vs_step_0": {
                row: {c.label: d for c in self.checkpoints if (d := self.delta(row, c.label)) is not None}
                for row in self.rows
            },
            "best": {row: best.label if (best := self.best(row)) else None for row in self.rows},
        }


def build_table(results: list[dict[str, Any]]) -> ResultsTable:
    steps = {r["label"]: int(r["step"]) for r in results}
    checkpoints = sorted((Checkpoint(label, step) for label, step in steps.items()), key=lambda c: (c.step, c.label))
    kinds = {r["benchmark"]: str(r.get("kind", "math")) for r in results}
    order = {kind: index for index, kind in enumerate(KIND_ORDER)}
    benchmarks = sorted(kinds, key=lambda b: (order.get(kinds[b], len(order)), kinds[b], b))
    accuracy: dict[str, dict[str, float]] = {name: {} for name in benchmarks}
    for r in results:
        accuracy[r["benchmark"]][r["label"]] = float(r["accuracy"])
    accuracy[AVERAGE] = _average(accuracy, checkpoints, benchmarks)
    if len(set(kinds.values())) > 1:
        for kind in set(kinds.values()):
            accuracy[kind_average(kind)] = _average(accuracy, checkpoints, [b for b in benchmarks if kinds[b] == kind])
    baseline = next((c.label for c in checkpoints if c.step == 0), None)
    return ResultsTable(checkpoints, benchmarks, accuracy, baseline, kinds)


def _average(accuracy: dict[str, dict[str, float]], checkpoints: list[Checkpoint], rows: list[str]) -> dict[str, float]:
    """The mean over `rows`, for each checkpoint evaluated on all of them (only those get one)."""
    return {
        c.label: sum(accuracy[b][c.label] for b in rows) / len(rows)
        for c in checkpoints
        if all(c.label in accuracy[b] for b in rows)
    }
