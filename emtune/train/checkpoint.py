"""Local step folders: `step-N/` holds the HF model (safetensors) + tokenizer and `checkpoint.json`, written
last (a folder counts only with it); `step-N/trainer_state/` holds the resume state (optimizer, scheduler,
RNG and data position), kept only for the newest steps."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from emtune.errors import TrainingError
from emtune.fsutil import atomic_write_json
from emtune.store.integrity import FILES_KEY, record_files
from emtune.store.layout import (
    MARKER,
    STATE_DIR,
    STATE_FILE,
    is_partial_name,
    parse_step_name,
    partial_name,
    step_name,
)

__all__ = [
    "MARKER",
    "STATE_DIR",
    "STATE_FILE",
    "clean_partials",
    "complete_steps",
    "has_state",
    "partial_dir",
    "prune",
    "prune_states",
    "read_marker",
    "read_state",
    "seal",
    "step_dir",
]


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / step_name(step)


def partial_dir(run_dir: Path, step: int) -> Path:
    """Where every rank writes step N before rank 0 renames it into place (same name on all ranks)."""
    return Path(run_dir) / partial_name(step)


def complete_steps(run_dir: Path) -> list[int]:
    """Steps whose folder exists and carries its marker, ascending."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    steps = []
    for child in run_dir.iterdir():
        step = parse_step_name(child.name)
        if step is not None and (child / MARKER).is_file():
            steps.append(step)
    return sorted(steps)


def has_state(folder: Path) -> bool:
    """Whether a step folder still holds its resume state (its state file is written last, removed first)."""
    return (Path(folder) / STATE_DIR / STATE_FILE).is_file()


def read_marker(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))


def read_state(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / STATE_DIR / STATE_FILE).read_text(encoding="utf-8"))


def seal(partial: Path, final: Path, state: dict[str, Any], marker: dict[str, Any]) -> None:
    """Rank 0, after every rank has written `partial`: state file; the marker, recording every file's size and
    sha256, last; then the atomic rename."""
    atomic_write_json(partial / STATE_DIR / STATE_FILE, state)
    atomic_write_json(partial / MARKER, {**marker, FILES_KEY: record_files(partial)})
    if final.exists():
        # Not a step this run sealed (those stop a run without --resume, and a resumed run only adds newer ones):
        # a folder emtune did not write is never replaced.
        raise TrainingError(f"{str(final)!r} exists and is not a complete step emtune wrote; move it away and resume")
    os.replace(partial, final)


def prune(run_dir: Path, keep_last: int, protect: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """Delete all but the newest `keep_last` complete steps, never a protected one; returns the deleted."""
    steps = complete_steps(run_dir)
    doomed = [s for s in steps[:-keep_last] if s not in protect] if keep_last < len(steps) else []
    for step in doomed:
        # Out of view in one rename first: a half-deleted step never counts as complete.
        gone = partial_dir(run_dir, step)
        os.replace(step_dir(run_dir, step), gone)
        shutil.rmtree(gone, ignore_errors=True)
    return doomed


def prune_states(run_dir: Path, keep: int, protect: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """Drop the resume state of all but the newest `keep` steps that have one; the models stay."""
    steps = [s for s in complete_steps(run_dir) if has_state(step_dir(run_dir, s))]
    doomed = [s for s in steps[:-keep] if s not in protect] if keep < len(steps) else []
    for step in doomed:
        state = step_dir(run_dir, step) / STATE_DIR
        (state / STATE_FILE).unlink()  # first: a half-deleted state no longer counts as one
        shutil.rmtree(state, ignore_errors=True)
    return doomed


def clean_partials(run_dir: Path) -> list[Path]:
    """Remove step folders a killed run left half-written (`.step-N.partial`); they never count."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    stale = [child for child in run_dir.iterdir() if is_partial_name(child.name) and child.is_dir()]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale
