"""DeepSpeed defaults on GPU nodes (CPU Adam for optimizer offload, overlap_comm) and on CPU machines, as the
configs DeepSpeed itself accepts. The GPU side can only be checked as configuration here: no CUDA in CI."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from emtune.config import load_config
from emtune.train.distributed import build_optimizer, deepspeed_config, plan_geometry


def config_for(on_gpu: bool, **overrides: object) -> dict:
    t = load_config(None, {"train.strategy": "zero2", "train.rollouts_per_step": 8, **overrides}).train
    return deepspeed_config(t, plan_geometry(t, 1, 0), on_gpu=on_gpu)


def deepspeed_reads(config: dict) -> Any:
    """DeepSpeed's own parse of `config`. Its sub-configs (zero_optimization, ...) reject unknown keys, but it
    ignores an unknown top-level key, so those are checked against the key names DeepSpeed defines."""
    from deepspeed.runtime import constants
    from deepspeed.runtime.config import DeepSpeedConfig
    from deepspeed.runtime.zero.config import ZERO_OPTIMIZATION

    known = {value for name, value in vars(constants).items() if name.isupper() and isinstance(value, str)}
    unknown = sorted(set(config) - known - {ZERO_OPTIMIZATION})
    assert not unknown, f"DeepSpeed ignores these keys: {unknown}"
    return DeepSpeedConfig(config)


@pytest.mark.parametrize("on_gpu", [True, False])
def test_deepspeed_reads_back_every_value_emtune_sets(on_gpu: bool) -> None:
    overrides = {"train.offload_optimizer": True, "train.micro_batch_size": 2, "train.grad_clip": 0.5}
    t = load_config(None, {"train.strategy": "zero2", "train.rollouts_per_step": 8, **overrides}).train
    parsed = deepspeed_reads(config_for(on_gpu, **overrides))
    assert (parsed.train_batch_size, parsed.train_micro_batch_size_per_gpu, parsed.gradient_accumulation_steps) == (
        8,
        2,
        plan_geometry(t, 1, 0).micro_batches_per_rank,
    )
    assert parsed.gradient_clipping == 0.5 and parsed.zero_optimization_stage == 2
    assert parsed.zero_config.offload_optimizer.device == "cpu" and parsed.zero_config.overlap_comm is on_gpu
    assert parsed.bfloat16_config.enabled is False and parsed.zero_allow_untested_optimizer is True
    assert parsed.optimizer_name == ("adamw" if on_gpu else None)


def test_a_misspelt_key_fails_the_check() -> None:
    from pydantic import ValidationError

    config = config_for(True, **{"train.offload_optimizer": True})
    with pytest.raises(AssertionError, match="gradient_clippng"):
        deepspeed_reads({**config, "gradient_clippng": 1.0})
    with pytest.raises(ValidationError, match="overlap_com"):
        deepspeed_reads({**config, "zero_optimization": {**config["zero_optimization"], "overlap_com": True}})


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
