"""`emtune promote RUN` on a finished local run: the rule's numbers printed, the chosen step registered in the
local MLflow store beside the runs (sqlite, no server), promotion.json in the run; a re-run adds no version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from common import run_cli
from promote_support import write_eval

from emtune.config import RunConfig, dump_config
from emtune.runs.local import CONFIG_FILE, Provenance, RunRecord, save_record

BASE = [2, 3, 4, 5] * 10


def finished_run(runs: Path, run_id: str, steps: dict[int, list[int]]) -> Path:
    run_dir = runs / run_id
    store = (run_dir / "store").as_uri()
    write_eval(run_dir / "pipeline_root" / "emtune-pipeline-x" / "evaluate", store, steps)
    (run_dir / CONFIG_FILE).write_text(dump_config(RunConfig()), encoding="utf-8")
    record = RunRecord.begin(run_dir, "succeeded", "cafe", Provenance())
    save_record(record)
    return run_dir


@pytest.mark.slow  # ~40 s on 2 cores: importing mlflow and creating its sqlite schema
def test_promote_a_finished_local_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    run_dir = finished_run(tmp_path / "runs", "run-1", {0: BASE, 2: [c + 3 for c in BASE]})
    code, out, err = run_cli(["promote", str(run_dir)], capsys)
    assert code == 0, err
    assert out.startswith("PROMOTED: gain +")
    assert "accuracy over amc23: step-2" in out and "p " in out and "alpha 0.05/1 steps" in out
    assert "registered emtune version 1 in mlflow" in out and "alias 'champion' moved to version 1" in out
    uri = f"sqlite:///{(tmp_path / 'runs' / 'registry' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    (version,) = client.search_model_versions("name = 'emtune'")
    assert version.source == (run_dir / "store").as_uri() + "/step-2"
    assert client.get_model_version_by_alias("emtune", "champion").version == version.version
    outcome = json.loads((run_dir / "promotion.json").read_text(encoding="utf-8"))
    assert outcome["decision"]["promoted"] and outcome["version"] == "1" and outcome["alias_moved"]

    code, out, err = run_cli(["promote", str(run_dir), "--set", "promote.margin=0.5"], capsys)
    assert code == 0, err
    assert out.startswith("not promoted: gain") and "registered before; tags updated" in out
    assert len(client.search_model_versions("name = 'emtune'")) == 1
    assert client.get_model_version(version.name, version.version).tags["emtune.promoted"] == "false"

    code, out, err = run_cli(["promote", str(run_dir), "--step", "2", "--set", "promote.margin=0.5"], capsys)
    assert code == 0, err
    assert out.startswith("PROMOTED: promoted by ") and "(override); the rule: gain" in out
    tags = client.get_model_version(version.name, version.version).tags
    assert tags["emtune.promoted"] == "true" and tags["emtune.override"]
    assert client.get_model_version_by_alias("emtune", "champion").version == version.version


def test_promote_refuses_what_is_not_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["promote", str(tmp_path)], capsys)
    assert code == 2 and "is not a local run folder" in err and "Traceback" not in err
    run_dir = finished_run(tmp_path / "runs", "run-2", {0: BASE})
    code, _, err = run_cli(["promote", str(run_dir), "--set", "promote.margin=2"], capsys)
    assert code == 2 and "promote.margin" in err
    record = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**record, "status": "failed"}))
    code, _, err = run_cli(["promote", str(run_dir)], capsys)
    assert code == 2 and "only a succeeded run can be promoted" in err
