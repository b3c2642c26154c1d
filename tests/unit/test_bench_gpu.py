"""`make bench-gpu`'s figures, on the tiny model on CPU: each figure comes from the step it names, and the
recompile count sees a recompile (on CPU nothing compiles by itself, so one is planted)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

from emtune.bench import gpu
from emtune.bench.gpu import bench_shape


def tiny_row() -> dict[str, Any]:
    return bench_shape("builtin:tiny", samples=4, new_tokens=4, micro=2, with_vllm=False)


def test_timed_figures_come_from_the_step_after_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    real_step = gpu.Trainer.train_step
    returned: list[dict[str, Any]] = []

    def slow_first_step(self: Any, step: int) -> dict[str, Any]:
        if not returned:
            time.sleep(2.0)  # the warm-up's compile, made long enough to tell apart
        returned.append(real_step(self, step))
        return returned[-1]

    monkeypatch.setattr(gpu.Trainer, "train_step", slow_first_step)
    row = tiny_row()
    assert len(returned) == 2
    assert row["warmup_step_s"] >= 2.0 and row["emtune_step_s"] < row["warmup_step_s"] - 1.0
    timed = returned[1]
    assert row["rollout_s"] == timed["sample_s"] and 0 < row["rollout_s"] < row["emtune_step_s"]
    assert row["rollout_tokens_per_s"] == pytest.approx(timed["completion_tokens_mean"] * 4 / timed["sample_s"])
    assert row["seed_step_s"] > 0 and "1 of 2 micro-batches timed and scaled" in row["seed_step_name"]
    assert "vllm" not in row


def test_a_recompile_in_the_timed_step_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    real_step = gpu.Trainer.train_step
    double = torch.compile(lambda x: x * 2, backend="eager", dynamic=False)
    calls: list[int] = []

    def step_that_compiles(self: Any, step: int) -> dict[str, Any]:
        calls.append(step)
        double(torch.ones(len(calls)))  # a new input shape on each call: a new graph each time
        return real_step(self, step)

    monkeypatch.setattr(gpu.Trainer, "train_step", step_that_compiles)
    row = tiny_row()
    assert row["decode_graphs_compiled"] == 1 and row["graphs_recompiled_in_timed_step"] == 1
