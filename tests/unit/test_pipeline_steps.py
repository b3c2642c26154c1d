"""Step adapters and local-run bookkeeping: which pairs get evaluated, headline metrics, run records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emtune.config import load_config
from emtune.errors import TrainingError
from emtune.pipeline.steps import eval_pairs, headline_metrics
from emtune.runs.local import RunRecord, list_runs, local_config, save_record

SAVED = {5: "s3://b/run/step-5", 10: "s3://b/run/step-10"}


def test_default_pairs_are_base_model_and_every_saved_step() -> None:
    cfg = load_config(None, {"eval.benchmarks": ["demo-arith", "demo-algebra"], "model.path": "org/base"})
    pairs = eval_pairs(cfg, SAVED)
    assert [(p["step"], p["benchmark"]) for p in pairs] == [
        (0, "demo-arith"),
        (0, "demo-algebra"),
        (5, "demo-arith"),
        (5, "demo-algebra"),
        (10, "demo-arith"),
        (10, "demo-algebra"),
    ]
    assert {p["model"] for p in pairs} == {"org/base", *SAVED.values()}


def test_chosen_steps_and_a_step_that_was_not_saved() -> None:
    cfg = load_config(None, {"eval.benchmarks": ["demo-arith"], "pipeline.eval_steps": [10, 10]})
    assert eval_pairs(cfg, SAVED) == [{"model": SAVED[10], "step": 10, "benchmark": "demo-arith"}]
    cfg = load_config(None, {"eval.benchmarks": ["demo-arith"], "pipeline.eval_steps": [0, 7]})
    with pytest.raises(TrainingError, match=r"steps \[7\] that training did not save; saved: \[5, 10\]"):
        eval_pairs(cfg, SAVED)


def test_headline_metrics_from_pair_results(tmp_path: Path) -> None:
    for step, accuracy in [(0, 0.25), (5, 0.75), (10, 0.5)]:
        folder = tmp_path / f"pair-{step}" / f"step-{step}" / "demo-arith"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(
            json.dumps({"benchmark": "demo-arith", "step": step, "accuracy": accuracy})
        )
    headline = headline_metrics([tmp_path / f"pair-{step}" for step in (0, 5, 10)])
    assert headline == {
        "demo-arith/step-0/accuracy": 0.25,
        "demo-arith/step-5/accuracy": 0.75,
        "demo-arith/step-10/accuracy": 0.5,
        "demo-arith/best_gain": 0.5,
    }


def test_local_config_keeps_a_configured_store(tmp_path: Path) -> None:
    local = local_config(load_config(None, {}), tmp_path / "r1")
    assert local.store.uri == (tmp_path / "r1" / "store").as_uri()
    assert local.run.out_dir == tmp_path / "r1" / "train" and local.pipeline.eval_retries == 0
    assert local_config(load_config(None, {"store.uri": "s3://b/p"}), tmp_path / "r2").store.uri == "s3://b/p"


def test_runs_are_listed_oldest_first(tmp_path: Path) -> None:
    for run_id, created in [("b", "2026-01-02T00:00:00+00:00"), ("a", "2026-01-03T00:00:00+00:00")]:
        save_record(RunRecord(run_id, str(tmp_path / run_id), "succeeded", "c.yaml", "h", created))
    assert [record.run_id for record in list_runs(tmp_path)] == ["b", "a"]


def test_a_pods_run_folder_is_on_its_scratch_volume() -> None:
    from pathlib import Path

    from emtune.pipeline.steps import pod_out_dir

    assert pod_out_dir(Path("runs/emtune"), {"EMTUNE_SCRATCH": "/scratch"}) == Path("/scratch/runs/emtune")
    assert pod_out_dir(Path("/data/run"), {"EMTUNE_SCRATCH": "/scratch"}) == Path("/data/run")  # the user's choice
    assert pod_out_dir(Path("runs/emtune"), {}) == Path("runs/emtune")  # kfp.local: this machine
