"""`emtune pipeline run --local`: the whole pipeline through kfp.local on the tiny model, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from common import TINY_RUN

from emtune.config.store import StoreConfig
from emtune.runs.local import list_runs
from emtune.store import open_store

E2E_RUN = {**TINY_RUN, "run": {"name": "e2e", "seed": 0}}
BENCHMARKS = TINY_RUN["eval"]["benchmarks"]


@pytest.mark.slow
def test_local_pipeline_run(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(E2E_RUN), encoding="utf-8")
    runs_root = tmp_path / "runs"
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
        str(runs_root),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    printed = proc.stdout

    (record,) = list_runs(runs_root)
    assert record.status == "succeeded" and record.finished_at and record.error is None
    report_html = Path(record.report or "")
    assert report_html.is_file() and str(report_html) in printed
    run_dir = Path(record.run_dir)
    assert json.loads((run_dir / "run.json").read_text())["run_id"] == record.run_id

    # The terminal gets one line per task start and end, the report, its headline and where the full log is;
    # kfp.local's own output (hundreds of lines, colour codes) is in the run's pipeline.log only.
    lines = printed.splitlines()
    assert "\x1b[" not in printed + proc.stderr and len(lines) < 40, printed
    assert "  prep started" in lines and any(line.startswith("  report succeeded in ") for line in lines)
    assert "  demo-arith (2 of 8): " in printed and f"full log: {record.log}" in printed
    log = Path(record.log or "").read_text()
    assert "\x1b[" not in log and "Executing task 'train'" in log and len(log.splitlines()) > 200

    # prep: the prompt set is an artifact.
    (prompts,) = run_dir.glob("pipeline_root/*/prep/prompts/prompts.parquet")
    assert prompts.stat().st_size > 0

    # train: two saved steps in the run's own prefix of the file:// store, each with its manifest.
    (store_dir,) = [p for p in (run_dir / "store").iterdir() if p.is_dir()]
    store = open_store(store_dir.as_uri(), StoreConfig())
    assert store.complete_steps() == [1, 2]
    for step in (1, 2):
        assert (store_dir / f"step-{step}" / "manifest.json").is_file()

    # evaluate: one result per (step × benchmark), step 0 being the base model.
    pairs = set()
    for metrics_file in run_dir.glob("pipeline_root/**/results/*/*/metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        pairs.add((metrics["step"], metrics["benchmark"]))
    assert pairs == {(step, bench) for step in (0, 1, 2) for bench in BENCHMARKS}

    # report: lists every pair.
    results = json.loads((report_html.parent / "results.json").read_text())
    reported = {(r["step"], r["benchmark"]) for r in results["results"]}
    assert reported == pairs
    # ... and is put beside the run's steps in the store, where the dashboard reads a cluster run's evaluations.
    assert json.loads((store_dir / "report" / "results.json").read_text()) == results
    assert (store_dir / "report" / "report.html").read_bytes() == report_html.read_bytes()
