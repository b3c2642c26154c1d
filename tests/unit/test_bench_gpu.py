"""The GPU bench script's code path, run on the CPU with the tiny model: the device run has no time to spare
for a typo. Its figures mean nothing here; what is checked is that every one of them is produced."""

from __future__ import annotations

from emtune.bench.gpu import bench_shape


def test_bench_shape_produces_every_figure_on_the_tiny_model() -> None:
    row = bench_shape("builtin:tiny", samples=4, new_tokens=4, micro=2, with_vllm=False)
    for key in ("warmup_step_s", "emtune_step_s", "rollout_s", "rollout_tokens_per_s", "seed_step_s", "ratio_to_seed"):
        assert row[key] > 0, key
    assert row["loss_and_update_s"] == row["emtune_step_s"] - row["rollout_s"]
    assert "1 of 2 micro-batches timed and scaled" in row["seed_step_name"]
    assert row["graphs_recompiled_in_timed_step"] == 0
    assert "vllm" not in row
