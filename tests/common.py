"""Test helpers shared across test folders: the tiny model's whole-pipeline run config, the `emtune` CLI run
in-process, and `emtune.components` / `emtune.workflows` importable from a checkout."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

# The tiny model's run, small enough for a test: 2 steps, 2 problems per benchmark, 8 new tokens.
TINY_RUN: dict[str, Any] = {
    "run": {"name": "dash", "seed": 0},
    "model": {"path": "builtin:tiny"},
    "train": {
        "prompts": "builtin:demo",
        "max_steps": 2,
        "save_every": 1,
        "rollouts_per_step": 4,
        "rollout_batch_size": 4,
        "micro_batch_size": 2,
        "max_new_tokens": 8,
        "learning_rate": 1e-3,
    },
    "eval": {
        "benchmarks": ["demo-arith", "demo-algebra"],
        "backend": "hf",
        "limit": 2,
        "max_new_tokens": 8,
        "batch_size": 8,
        "grading_workers": 1,
    },
    "pipeline": {"parallelism": 2},
}


def alias_workflows() -> None:
    """Installs map emtune.components/emtune.workflows to the top-level folders (package-dir); a checkout
    without that mapping installed gets the same modules by alias."""
    if importlib.util.find_spec("emtune.workflows") is None:
        sys.path.insert(0, str(REPO))
        for name in ("components", "workflows"):
            sys.modules[f"emtune.{name}"] = importlib.import_module(name)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`emtune <argv>` in this process: its exit code, stdout and stderr."""
    from emtune.cli import main

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["emtune", *argv])
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
