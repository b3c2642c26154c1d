"""Accelerate + DeepSpeed set-up for `train.strategy`: none | ddp | zero2 | zero3, on CPU (gloo) or GPUs.

Works under `torchrun` and `accelerate launch` with env-based rendezvous; nothing assumes one node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from emtune.config.train import TrainConfig
from emtune.errors import TrainingError


@dataclass(frozen=True)
class Geometry:
    """How one step's rollouts split over ranks and micro-batches."""

    world_size: int
    rank: int
    rollouts_per_rank: int
    micro_batches_per_rank: int


def world_from_env() -> tuple[int, int]:
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def plan_geometry(cfg: TrainConfig, world_size: int, rank: int) -> Geometry:
    share = world_size * cfg.micro_batch_size
    if cfg.rollouts_per_step % share:
        raise TrainingError(
            f"train.rollouts_per_step {cfg.rollouts_per_step} is not divisible by world_size {world_size} x "
            f"train.micro_batch_size {cfg.micro_batch_size} = {share}"
        )
    per_rank = cfg.rollouts_per_step // world_size
    return Geometry(world_size, rank, per_rank, per_rank // cfg.micro_batch_size)


def uses_deepspeed_adam(cfg: TrainConfig, on_gpu: bool) -> bool:
    """Optimizer offload on GPU nodes runs DeepSpeed's CPU Adam (vectorised C++ on the host, what the anchors
    use); a torch AdamW stepping over host tensors is several times slower. On CPU-only machines the torch
    AdamW stays: nothing is offloaded there, and CPU Adam would need a compiled op."""
    return on_gpu and cfg.offload_optimizer and cfg.strategy in ("zero2", "zero3")


def build_optimizer(parameters: list[torch.nn.Parameter], cfg: TrainConfig, on_gpu: bool) -> Any:
    """A torch AdamW, or the placeholder from which accelerate has DeepSpeed build its CPU Adam."""
    if uses_deepspeed_adam(cfg, on_gpu):
        from accelerate.utils import DummyOptim

        return DummyOptim(parameters, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(
        parameters,
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
    )


def deepspeed_config(cfg: TrainConfig, geometry: Geometry, on_gpu: bool) -> dict[str, Any]:
    stage = {"zero2": 2, "zero3": 3}[cfg.strategy]
    # overlap_comm overlaps the gradient reduce-scatter with backward on GPU streams; on CPU (gloo) there is
    # no second stream to overlap on and it only costs memory.
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": on_gpu, "contiguous_gradients": True}
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if cfg.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": geometry.micro_batches_per_rank,
        "train_batch_size": cfg.rollouts_per_step,
        "gradient_clipping": cfg.grad_clip,
        "bf16": {"enabled": cfg.precision == "bf16"},
        "zero_optimization": zero,
        # Elsewhere we bring a torch AdamW (see uses_deepspeed_adam).
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 1_000_000,
        "wall_clock_breakdown": False,
    }
    if uses_deepspeed_adam(cfg, on_gpu):
        config["optimizer"] = {
            "type": "AdamW",
            "params": {
                "lr": cfg.learning_rate,
                "betas": [cfg.adam_beta1, cfg.adam_beta2],
                "eps": cfg.adam_eps,
                "weight_decay": cfg.weight_decay,
            },
        }
    return config


def _ensure_single_process_rendezvous() -> None:
    """DeepSpeed always wants a process group; give a plain `emtune train` a one-rank one."""
    if "RANK" in os.environ:
        return
    os.environ.update(
        {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    )
    if "MASTER_PORT" not in os.environ:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(sock.getsockname()[1])


def build_accelerator(cfg: TrainConfig, geometry: Geometry) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, InitProcessGroupKwargs

    on_cpu = not torch.cuda.is_available()
    deepspeed = cfg.strategy in ("zero2", "zero3")
    kwargs: dict[str, Any] = {
        # accelerate only turns DeepSpeed on with cpu=False; DS_ACCELERATOR=cpu keeps it on the CPU.
        "cpu": on_cpu and not deepspeed,
        "mixed_precision": "bf16" if cfg.precision == "bf16" else "no",
        "gradient_accumulation_steps": geometry.micro_batches_per_rank,
    }
    if on_cpu and (geometry.world_size > 1 or deepspeed):
        kwargs["kwargs_handlers"] = [InitProcessGroupKwargs(backend="gloo")]
    if deepspeed:
        if on_cpu:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        _ensure_single_process_rendezvous()
        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(hf_ds_config=deepspeed_config(cfg, geometry, on_gpu=not on_cpu))
    # accelerate keeps its state in process-wide singletons; a second run in the same process (tests, the
    # dashboard) with other settings must start from a clean one. The process group itself is kept.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(**kwargs)
