"""DeepSpeed defaults on GPU nodes (CPU Adam for optimizer offload, overlap_comm) and on CPU machines, as the
configs DeepSpeed itself accepts. The GPU side can only be checked as configuration here: no CUDA in CI."""

from __future__ import annotations

import pytest
import torch

from emtune.config import load_config
from emtune.train.distributed import build_optimizer, deepspeed_config, plan_geometry


def config_for(on_gpu: bool, **overrides: object) -> dict:
    t = load_config(None, {"train.strategy": "zero2", "train.rollouts_per_step": 8, **overrides}).train
    return deepspeed_config(t, plan_geometry(t, 1, 0), on_gpu=on_gpu)


@pytest.mark.parametrize("on_gpu", [True, False])
def test_deepspeed_accepts_the_config(on_gpu: bool) -> None:
    from deepspeed.runtime.config import DeepSpeedConfig

    DeepSpeedConfig(config_for(on_gpu, **{"train.offload_optimizer": True}))


def test_gpu_nodes_offload_to_deepspeeds_cpu_adam_and_overlap_communication() -> None:
    ds = config_for(True, **{"train.offload_optimizer": True, "train.learning_rate": 3e-5, "train.adam_eps": 1e-6})
    assert ds["zero_optimization"]["overlap_comm"] is True
    assert ds["optimizer"] == {
        "type": "AdamW",
        "params": {"lr": 3e-5, "betas": [0.9, 0.999], "eps": 1e-6, "weight_decay": 0.01},
    }
    t = load_config(None, {"train.strategy": "zero2", "train.offload_optimizer": True}).train
    from accelerate.utils import DummyOptim

    assert isinstance(build_optimizer([torch.nn.Parameter(torch.zeros(2))], t, on_gpu=True), DummyOptim)


def test_cpu_machines_keep_torch_adamw_and_no_overlap() -> None:
    ds = config_for(False, **{"train.offload_optimizer": True})
    assert ds["zero_optimization"]["overlap_comm"] is False
    assert "optimizer" not in ds
    assert "optimizer" not in config_for(True)  # no offload: the torch AdamW on the GPU
    t = load_config(None, {"train.strategy": "zero2", "train.offload_optimizer": True}).train
    assert isinstance(build_optimizer([torch.nn.Parameter(torch.zeros(2))], t, on_gpu=False), torch.optim.AdamW)
