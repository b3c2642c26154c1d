"""Eval folders as `emtune eval` writes them (metrics.json and samples.jsonl per pair), built from chosen
per-problem counts, for promotion tests that need results on disk."""

from __future__ import annotations

import json
from pathlib import Path

N = 8  # samples per problem


def write_eval(root: Path, source: str, steps: dict[int, list[int]], benchmark: str = "amc23") -> Path:
    """`root/step-S/<benchmark>/` per step; problem i had steps[S][i] of N samples right; a later step's model
    is `<source>/step-S` (its store URI), step 0's the base model."""
    for step, counts in steps.items():
        folder = root / f"step-{step}" / benchmark
        folder.mkdir(parents=True)
        rows = [{"id": f"p{i}", "sample": s, "correct": s < c} for i, c in enumerate(counts) for s in range(N)]
        (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        metrics = {
            "label": f"step-{step}", "step": step, "benchmark": benchmark,
            "model": f"{source}/step-{step}" if step else "builtin:tiny-math",
            "accuracy": sum(counts) / (N * len(counts)), "protocol": {"n": N, "temperature": 1.0},
        }  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return root
