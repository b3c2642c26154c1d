"""Per-step metrics: one `metrics.jsonl` line per optimizer step, and Weights & Biases when configured."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from emtune.config import LoggingConfig
from emtune.fsutil import atomic_write_text, read_jsonl

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"


def wandb_mode(cfg: LoggingConfig) -> Literal["online", "offline", "disabled"]:
    """'auto' never blocks on the network: online only when an API key is present."""
    if cfg.wandb_mode != "auto":
        return cfg.wandb_mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class MetricsLog:
    """Appends step metrics; on resume, forgets the lines of steps after the one resumed from."""

    def __init__(self, run_dir: Path, resumed_step: int, logging_cfg: LoggingConfig, run_name: str, config: dict):
        self.path = Path(run_dir) / METRICS_FILE
        kept = [m for m in read_jsonl(self.path) if m.get("step", 0) <= resumed_step]
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
