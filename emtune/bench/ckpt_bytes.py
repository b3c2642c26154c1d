"""Bytes a run moves through the store per step, for the embedded tiny model: the whole step folder (what a
push and an evaluation pull moved before resume state had a file set of its own) against what the store code
moves now (model files, plus resume state for the steps that keep it; pulls for evaluation: model files only).

Both sides are measured on the same step folders of one real training run, through a real `file://` store.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from emtune.config import load_config
from emtune.fsutil import OUTPUT_MARKER
from emtune.store import open_store
from emtune.store.layout import step_name
from emtune.train import checkpoint
from emtune.train.checkpointing import pushes_state
from emtune.train.trainer import run as train

TINY_RUN = {
    "model.path": "builtin:tiny",
    "train.prompts": "builtin:demo",
    "train.rollouts_per_step": 4,
    "train.rollout_batch_size": 4,
    "train.micro_batch_size": 2,
    "train.max_new_tokens": 8,
    "train.learning_rate": 1e-3,
    "train.save_every": 1,
}


@dataclass(frozen=True)
class StepBytes:
    step: int
    folder: int  # the whole step folder: model + trainer_state (pushed and pulled whole before)
    pushed: int  # what the store's push sent now
    pulled: int  # what an evaluation pull fetched now


def _size(folder: Path) -> int:
    # emtune's output marker (who wrote a pulled folder) is bookkeeping, not transferred bytes.
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and path.name != OUTPUT_MARKER)


def run_bench(steps: int = 4, state_every: int = 0) -> list[StepBytes]:
    """Train the tiny model `steps` steps (every step saved, every step's state kept locally), then push and
    pull each step through a fresh store the way the trainer and the evaluator do."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="emtune-bench-ckpt-") as tmp:
        run_dir = Path(tmp) / "run"
        cfg = load_config(
            None, {**TINY_RUN, "train.max_steps": steps, "train.keep_state": steps, "run.out_dir": str(run_dir)}
        )
        train(cfg)
        store = open_store(str(Path(tmp) / "store"), cfg.store)
        for step in checkpoint.complete_steps(run_dir):
            folder = checkpoint.step_dir(run_dir, step)
            pushed = store.upload_step(
                folder,
                step,
                run_id="bench",
                config_hash=cfg.digest(),
                metrics={},
                with_state=pushes_state(step, steps, state_every),
            ).uploaded_bytes
            pulled = _size(store.pull(step, Path(tmp) / "pulled" / step_name(step)))
            rows.append(StepBytes(step, _size(folder), pushed, pulled))
    return rows
