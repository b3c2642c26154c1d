"""Run under torchrun: train per a JSON config, then every rank writes its full parameter vector."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main() -> None:
    from emtune.config import validate_config
    from emtune.train.trainer import Trainer

    cfg = validate_config(json.loads(Path(sys.argv[1]).read_text()))
    out = Path(sys.argv[2])
    trainer = Trainer(cfg)
    result = trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    params = list(model.parameters())
    if cfg.train.strategy == "zero3":
        import deepspeed

        with deepspeed.zero.GatheredParameters(params):
            vector = torch.cat([p.detach().float().flatten().clone() for p in params])
    else:
        vector = torch.cat([p.detach().float().flatten() for p in params])
    rank = trainer.accelerator.process_index
    torch.save({"params": vector, "losses": [m["loss"] for m in result.metrics]}, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
