"""The benchmark × checkpoint accuracy table: unweighted average (as the paper reports), deltas against step
0, and the best step per benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AVERAGE = "average"


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

    @property
    def rows(self) -> list[str]:
        return [*self.benchmarks, AVERAGE]

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
            "delta_vs_step_0": {
                row: {c.label: d for c in self.checkpoints if (d := self.delta(row, c.label)) is not None}
                for row in self.rows
            },
            "best": {row: best.label if (best := self.best(row)) else None for row in self.rows},
        }


def build_table(results: list[dict[str, Any]]) -> ResultsTable:
    steps = {r["label"]: int(r["step"]) for r in results}
    checkpoints = sorted((Checkpoint(label, step) for label, step in steps.items()), key=lambda c: (c.step, c.label))
    benchmarks = sorted({r["benchmark"] for r in results})
    accuracy: dict[str, dict[str, float]] = {name: {} for name in benchmarks}
    for r in results:
        accuracy[r["benchmark"]][r["label"]] = float(r["accuracy"])
    # The average is over every benchmark, so only a checkpoint evaluated on all of them gets one.
    accuracy[AVERAGE] = {
        c.label: sum(accuracy[b][c.label] for b in benchmarks) / len(benchmarks)
        for c in checkpoints
        if all(c.label in accuracy[b] for b in benchmarks)
    }
    baseline = next((c.label for c in checkpoints if c.step == 0), None)
    return ResultsTable(checkpoints, benchmarks, accuracy, baseline)
