"""Per-step metrics: tallied over a step's micro-batches on the device, then one `metrics.jsonl` line per
optimizer step, and Weights & Biases when configured."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

import torch

from emtune.config import LoggingConfig
from emtune.fsutil import atomic_write_text, parse_jsonl

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"


class StepTally:
    """One rank's sums over a step's micro-batches, kept on the device: no host sync per micro-batch, and one
    all-reduce for the whole step."""

    LOSS, ENTROPY, TOKENS, FINISHED, GAP, NONFINITE = range(6)

    def __init__(self, device: torch.device) -> None:
        self.totals = torch.zeros(6, device=device)
        self.gap_max = torch.zeros((), device=device)

    def add(self, loss: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, gap: torch.Tensor | None) -> None:
        """A micro-batch: its share of the step loss, per-position entropies, completion mask and (when the
        engine reported its log-probs) the per-token |log-prob gap|, zero outside the mask."""
        self.totals[self.NONFINITE] += (~torch.isfinite(loss)).float()
        self.totals[self.LOSS] += loss
        self.totals[self.ENTROPY] += entropy.sum()
        self.totals[self.TOKENS] += mask.sum()
        if gap is not None:
            self.totals[self.GAP] += gap.sum()
            self.gap_max = torch.maximum(self.gap_max, gap.max())

    @property
    def nonfinite(self) -> torch.Tensor:
        return self.totals[self.NONFINITE]


def wandb_mode(cfg: LoggingConfig) -> Literal["online", "offline", "disabled"]:
    """'auto' never blocks on the network: online only when an API key is present."""
    if cfg.wandb_mode != "auto":
        return cfg.wandb_mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class MetricsLog:
    """Appends step metrics; on resume, forgets the lines of steps after the one resumed from."""

    def __init__(self, run_dir: Path, resumed_step: int, logging_cfg: LoggingConfig, run_name: str, config: dict):
        self.path = Path(run_dir) / METRICS_FILE
        kept = [m for m in _read_metrics(self.path) if m.get("step", 0) <= resumed_step]
        atomic_write_text(self.path, "".join(json.dumps(m) + "\n" for m in kept))
        self._wandb = None
        if logging_cfg.wandb_project:
            import wandb

            mode = wandb_mode(logging_cfg)
            self._wandb = wandb.init(
                project=logging_cfg.wandb_project,
                entity=logging_cfg.wandb_entity,
                name=run_name,
                mode=mode,
                dir=str(run_dir),
                config=config,
                resume="allow",
                settings=wandb.Settings(init_timeout=30, silent=True),
            )
            log.info("W&B logging in %s mode", mode)

    def write(self, metrics: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")
        if self._wandb is not None:
            self._wandb.log(metrics, step=metrics["step"])

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """The metrics lines of an earlier run; a torn last line (a write the run was killed in) is dropped, with a
    warning. A bad line anywhere else is no torn write: refused as the DataError it is."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if lines:
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            log.warning("dropped the torn last line of %s (%d bytes), left by an interrupted run", path, len(lines[-1]))
            lines.pop()
    return parse_jsonl("\n".join(lines), repr(str(path)))
