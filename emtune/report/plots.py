"""PNG plots: accuracy vs step per benchmark, and the trainer's entropy vs step. matplotlib's object API only
(no pyplot), so plotting keeps no global state and needs no display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from emtune.report.table import AVERAGE, ResultsTable


def accuracy_vs_step(table: ResultsTable, path: Path) -> Path:
    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    for row in table.rows:
        points = [
            (c.step, 100 * table.accuracy[row][c.label]) for c in table.checkpoints if c.label in table.accuracy[row]
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            average = row == AVERAGE
            ax.plot(
                xs, ys, marker="o", linestyle="--" if average else "-", linewidth=2.2 if average else 1.4, label=row
            )
    return _save(fig, ax, path, ylabel="accuracy (%)", title="Accuracy vs step")


def entropy_vs_step(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    for name, rows in runs.items():
        points = [(row["step"], row["entropy"]) for row in rows if "entropy" in row]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker=".", label=name)
    return _save(fig, ax, path, ylabel="mean rollout entropy (nats)", title="Entropy vs step")


def _save(fig: Figure, ax: Any, path: Path, *, ylabel: str, title: str) -> Path:
    ax.set(xlabel="training step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return path
