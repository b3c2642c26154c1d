"""Pipeline parameters reach every step intact: a real kfp.local run of the real pipeline whose one-shot problem
(`data.text`) spans several lines and holds what a line-based, JSON or YAML format would misread. (KFP resolves
its own placeholder syntax, `{{$.inputs...}}`, even inside a value: no transport can protect that text.)"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from emtune.config import load_config
from emtune.runs.local import run_local

PROBLEM = (
    "A train leaves at 3 p.m.\n"
    "train.max_steps=999\n"
    "\n"
    '  It carries {"json": [1, 2]}, key: yaml, "quotes" \\\\ back\\slashes and $x$: how far, in km, is 2+3?'
)


@pytest.mark.slow
def test_a_multi_line_problem_survives_every_step_of_a_local_run(tmp_path: Path) -> None:
    source = tmp_path / "problems.jsonl"
    rows = [
        {"id": "other", "problem": "What is 1+1?", "answer": "2"},
        {"id": "mine", "problem": PROBLEM, "answer": "5"},
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    cfg = load_config(
        None,
        {
            "run.name": "multi\nline",
            "model.path": "builtin:tiny",
            "data.source": str(source),
            "data.text": PROBLEM,
            "train.max_steps": 1,
            "train.rollouts_per_step": 2,
            "train.rollout_batch_size": 2,
            "train.micro_batch_size": 2,
            "train.max_new_tokens": 4,
            "eval.benchmarks": ["demo-arith"],
            "eval.backend": "hf",
            "eval.limit": 1,
            "eval.max_new_tokens": 4,
            "eval.grading_workers": 1,
            "pipeline.eval_steps": [1],
        },
    )
    record = run_local(cfg, tmp_path / "runs")
    assert record.status == "succeeded"
    run_dir = Path(record.run_dir)

    # prep resolved the config (data.text selected the problem) and wrote it unchanged.
    (prompts,) = run_dir.glob("pipeline_root/*/prep/prompts/prompts.parquet")
    assert pq.read_table(prompts).to_pylist() == [{"id": "mine", "problem": PROBLEM, "answer": "5"}]
    # train resolved it too (one step, saved and pushed), and the evaluation inside the fan-out as well.
    (metrics_file,) = run_dir.glob("pipeline_root/**/results/*/*/metrics.json")
    assert json.loads(metrics_file.read_text())["step"] == 1
    assert Path(record.report or "").is_file()
