"""The local pipeline with one benchmark of each kind (humaneval, kk-4, math500, from fixture sources): every
(step, benchmark) pair is evaluated by its kind's grader and the report groups them by kind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from common import TINY_RUN

from emtune.runs.local import list_runs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
BENCHMARKS = {"humaneval": "code", "kk-4": "logic", "math500": "math"}


@pytest.mark.slow
def test_local_pipeline_with_code_logic_and_maths_benchmarks(tmp_path: Path) -> None:
    evaluation = {
        **TINY_RUN["eval"],
        "benchmarks": list(BENCHMARKS),
        "check_count": False,
        "benchmark_sampling": False,
        "sources": {
            "humaneval": str(FIXTURES / "humaneval-mini.jsonl"),
            "math500": str(FIXTURES / "math500-mini.jsonl"),
        },
    }
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "run": {"name": "kinds", "seed": 0}, "eval": evaluation}))
    command = [
        sys.executable,
        "-m",
        "emtune",
        "pipeline",
        "run",
        "--local",
        "--config",
        str(config),
        "--runs-root",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]

    (record,) = list_runs(tmp_path / "runs")
    assert record.status == "succeeded"
    run_dir = Path(record.run_dir)
    pairs = {}
    for metrics_file in run_dir.glob("pipeline_root/**/results/*/*/metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        pairs[(metrics["step"], metrics["benchmark"])] = metrics["kind"]
    assert pairs == {(step, name): kind for step in (0, 1, 2) for name, kind in BENCHMARKS.items()}
    report = Path(record.report or "").with_name("report.md").read_text()
    assert all(f"| {kind} average |" in report for kind in ("math", "code", "logic"))
