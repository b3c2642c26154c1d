"""Step folders: `step-N/` holds the HF model (safetensors) + tokenizer, `trainer_state/` (optimizer,
scheduler, RNG and data position) and `checkpoint.json`, written last. A folder counts only with it."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from emtune.fsutil import atomic_write_json

MARKER = "checkpoint.json"
STATE_DIR = "trainer_state"
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"step-{step}"


def partial_dir(run_dir: Path, step: int) -> Path:
    """Where every rank writes step N before rank 0 renames it into place (same name on all ranks)."""
    return Path(run_dir) / f".step-{step}.partial"


def complete_steps(run_dir: Path) -> list[int]:
    """Steps whose folder exists and carries its marker, ascending."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    steps = []
    for child in run_dir.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / MARKER).is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


def read_marker(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))


def read_state(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / STATE_DIR / STATE_FILE).read_text(encoding="utf-8"))


def seal(partial: Path, final: Path, step: int, state: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Rank 0, after every rank has written `partial`: state file, marker last, then the atomic rename."""
    atomic_write_json(partial / STATE_DIR / STATE_FILE, state)
    atomic_write_json(partial / MARKER, {"step": step, "metrics": metrics})
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)


def prune(run_dir: Path, keep_last: int, protect: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """Delete all but the newest `keep_last` complete steps, never a protected one; returns the deleted."""
    steps = complete_steps(run_dir)
    doomed = [s for s in steps[:-keep_last] if s not in protect] if keep_last < len(steps) else []
    for step in doomed:
        shutil.rmtree(step_dir(run_dir, step), ignore_errors=True)
    return doomed
