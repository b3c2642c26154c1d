"""Device-machine checks (CUDA only): static-cache compiled rollouts survive weight updates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.fail("tests/gpu needs a CUDA device: run them on the device machine (make test-gpu)")


def test_static_cache_rollouts_do_not_recompile_after_weight_updates(tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    from emtune.config import load_config
    from emtune.train.trainer import Trainer

    cfg = load_config(None, {
        "model.path": "builtin:tiny", "train.prompts": "builtin:demo", "run.out_dir": str(tmp_path / "run"),
        "train.max_steps": 3, "train.rollouts_per_step": 16, "train.rollout_batch_size": 16,
        "train.micro_batch_size": 8, "train.max_new_tokens": 32, "train.learning_rate": 1e-3,
        "train.static_cache": "auto", "train.temperature": 1.0, "train.top_p": 1.0,
    })  # fmt: skip
    trainer = Trainer(cfg)
    assert trainer.engine.static_cache
    first = trainer.train_step(1)
    graphs_after_first = counters["stats"]["unique_graphs"]
    second, third = trainer.train_step(2), trainer.train_step(3)
    assert counters["stats"]["unique_graphs"] == graphs_after_first, "weight updates triggered a recompile"
    assert third["entropy"] < first["entropy"]
    assert second["tokens_per_s"] > 0
