"""The KFP launcher over a recording stand-in for `kfp.Client` that answers with kfp_server_api's own models.

No KFP API server runs here; this checks the logic around the thin client calls: which version a run is created
from, which parameters it carries (provenance included, undeclared ones dropped), how runs map back to the
dashboard's view, and schedules as recurring runs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import RecordingKfpClient, tiny_config
from kfp_server_api import models

from emtune.dashboard.kfp_launcher import KfpLauncher
from emtune.dashboard.launcher import LaunchError, RunNotFound
from emtune.dashboard.settings import DashboardSettings
from emtune.errors import ConfigError
from emtune.pipeline.params import PROVENANCE_PARAMS, param_values
from emtune.runs.local import Provenance

pytest_plugins = ["dashboard_support"]

S3_CFG = {"store.uri": "s3://bucket/runs"}


def make(client: RecordingKfpClient, **settings: Any) -> KfpLauncher:
    base = {"launcher": "kfp", "kfp_host": "http://kfp.example:8888", "kfp_namespace": "team"}
    return KfpLauncher(DashboardSettings(**{**base, **settings}), client_factory=lambda: client)


def calls(client: RecordingKfpClient, name: str) -> list[dict[str, Any]]:
    return [kwargs for called, kwargs in client.calls if called == name]


def test_start_creates_a_run_of_the_newest_version_with_provenance() -> None:
    client = RecordingKfpClient()
    launcher = make(client)
    cfg = tiny_config(**S3_CFG, **{"train.learning_rate": 5e-4})
    run_id = launcher.start(cfg, Provenance("dashboard", "ann", "kfp-run-0"))
    (call,) = calls(client, "run_pipeline")
    assert (call["pipeline_id"], call["version_id"], call["experiment_id"]) == ("pipe-1", "ver-9", "exp-1")
    assert call["params"]["train_learning_rate"] == 5e-4
    assert {key: call["params"][key] for key in PROVENANCE_PARAMS} == {
        "provenance_trigger": "dashboard",
        "provenance_requested_by": "ann",
        "provenance_parent_run": "kfp-run-0",
    }
    assert calls(client, "create_experiment") == [{"name": "emtune", "namespace": "team"}]
    # Reading it back: the run's config and lineage come from its parameters.
    run = launcher.get_run(run_id)
    assert run.status == "running" and run.active and run.finished_at is None
    assert run.config is not None and run.config.train.learning_rate == 5e-4
    assert (run.provenance.trigger, run.provenance.requested_by, run.provenance.parent_run) == (
        "dashboard",
        "ann",
        "kfp-run-0",
    )
    assert run.pipeline_version == "ver-9" and run.url == "http://kfp.example:8888/#/runs/details/kfp-run-1"


def test_run_links_open_kfps_ui_not_its_api_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from emtune.runs.submit import UI_URL_ENV

    monkeypatch.setenv(UI_URL_ENV, "https://kubeflow.example/pipeline/")
    client = RecordingKfpClient()
    run_id = make(client).start(tiny_config(**S3_CFG), Provenance("dashboard", "ann", None))
    assert make(client).get_run(run_id).url == "https://kubeflow.example/pipeline/#/runs/details/kfp-run-1"


def test_parameters_the_version_does_not_declare_are_left_out_only_at_their_defaults() -> None:
    cfg = tiny_config(**S3_CFG)
    declared = set(param_values(cfg)) - {"train_loss_chunk_tokens"}  # an older version without this knob
    client = RecordingKfpClient(declared=declared)
    make(client).start(cfg, Provenance("api", "ci", None))
    (call,) = calls(client, "run_pipeline")
    assert set(call["params"]) == declared
    # A value that version cannot honour is refused, not dropped.
    changed = tiny_config(**S3_CFG, **{"train.loss_chunk_tokens": 128})
    with pytest.raises(LaunchError, match="does not declare train_loss_chunk_tokens"):
        make(client).start(changed, Provenance("api", "ci", None))
    assert len(calls(client, "run_pipeline")) == 1


def test_the_retrain_policy_holds_for_the_kfp_launcher() -> None:
    """Through the app: what the policy refuses never reaches KFP, and the store is the dashboard's."""
    from dashboard_support import BASE_URL
    from fastapi.testclient import TestClient

    from emtune.dashboard.app import create_app

    client = RecordingKfpClient()
    settings = {"launcher": "kfp", "kfp_host": "http://kfp.example:8888", "store_uri": "s3://dashboard/runs"}
    launcher = make(client, **settings)
    source = launcher.start(tiny_config(**{"store.uri": "s3://user-bucket/x"}), Provenance("manual", "ann", None))
    app = TestClient(create_app(DashboardSettings(**settings), launcher), base_url=BASE_URL)
    for body in (
        {"source_run": source, "overrides": {"model.trust_remote_code": True}},
        {"source_run": source, "overrides": {"store.uri": "s3://attacker/loot"}},
        {"source_run": source, "overrides": {"data.source": "s3://other-team/private.jsonl"}},
    ):
        response = app.post("/api/runs", json=body)
        assert response.status_code == 403 and "policy" in response.json()["detail"], body
    assert len(calls(client, "run_pipeline")) == 1
    ok = app.post("/api/runs", json={"source_run": source, "overrides": {"train.learning_rate": 2e-4}})
    assert ok.status_code == 201
    first, second = calls(client, "run_pipeline")
    assert first["params"]["store_uri"] == second["params"]["store_uri"] == "s3://dashboard/runs"
    assert second["params"]["train_learning_rate"] == 2e-4


def test_a_cluster_run_needs_an_s3_store_and_an_uploaded_pipeline() -> None:
    client = RecordingKfpClient()
    with pytest.raises(ConfigError, match=r"store\.uri"):
        make(client).start(tiny_config(), Provenance())
    with pytest.raises(LaunchError, match="emtune pipeline sync"):
        make(client, pipeline_name="missing").start(tiny_config(**S3_CFG), Provenance())
    assert not calls(client, "run_pipeline")


def test_stop_terminates_only_an_active_run() -> None:
    client = RecordingKfpClient()
    launcher = make(client)
    run_id = launcher.start(tiny_config(**S3_CFG), Provenance())
    launcher.stop(run_id)
    assert calls(client, "terminate_run") == [{"run_id": run_id}]
    client.runs[run_id].state = "CANCELED"
    assert launcher.get_run(run_id).status == "stopped"
    with pytest.raises(LaunchError, match="not running"):
        launcher.stop(run_id)
    with pytest.raises(RunNotFound):
        launcher.get_run("nope")


def test_list_runs_maps_states_and_reads_schedule_runs() -> None:
    client = RecordingKfpClient()
    launcher = make(client)
    first = launcher.start(tiny_config(**S3_CFG), Provenance())
    client.runs[first].state = "SUCCEEDED"
    client.runs[first].finished_at = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.timezone.utc)
    client.runs["by-schedule"] = models.V2beta1Run(run_id="by-schedule", state="FAILED", recurring_run_id="rr-1")
    runs = {run.run_id: run for run in launcher.list_runs()}
    assert runs[first].status == "succeeded" and runs[first].finished_at == "2026-11-27T09:00:00+00:00"
    assert runs["by-schedule"].status == "failed" and runs["by-schedule"].provenance.trigger == "schedule"
    (listing,) = calls(client, "list_runs")
    assert listing["experiment_id"] == "exp-1" and listing["namespace"] == "team"


def test_schedules_are_recurring_runs() -> None:
    client = RecordingKfpClient()
    launcher = make(client)
    schedule_id = launcher.create_schedule("nightly", "0 3 * * *", tiny_config(**S3_CFG), Provenance("x", "ann"))
    (call,) = calls(client, "create_recurring_run")
    assert call["cron_expression"] == "0 0 3 * * *"  # KFP's 6-field cron
    assert (call["max_concurrency"], call["no_catchup"], call["version_id"]) == (1, True, "ver-9")
    assert call["params"]["provenance_trigger"] == "schedule" and call["params"]["provenance_requested_by"] == "ann"
    (schedule,) = launcher.list_schedules()
    assert (schedule.schedule_id, schedule.name, schedule.cron, schedule.enabled) == (
        schedule_id,
        "nightly",
        "0 0 3 * * *",
        True,
    )
    launcher.set_schedule_enabled(schedule_id, False)
    assert launcher.list_schedules()[0].enabled is False
    launcher.set_schedule_enabled(schedule_id, True)
    launcher.delete_schedule(schedule_id)
    assert launcher.list_schedules() == []
    with pytest.raises(ConfigError, match="cron"):
        launcher.create_schedule("bad", "every day", tiny_config(**S3_CFG), Provenance())


def test_run_data_reads_checkpoints_and_metrics_from_the_store(tmp_path: Path) -> None:
    """A KFP run's steps and their metrics are read where the pipeline pushed them: <store>/<run id>."""
    from emtune.config.store import StoreConfig
    from emtune.store import open_store

    step_dir = tmp_path / "local" / "step-1"
    step_dir.mkdir(parents=True)
    (step_dir / "model.safetensors").write_bytes(b"weights")
    store_root = tmp_path / "store"
    client = RecordingKfpClient()
    run_id = make(client).start(tiny_config(**S3_CFG), Provenance())
    launcher = make(client, store_uri=store_root.as_uri())  # the dashboard reads the store it is configured with
    store = open_store(f"{store_root.as_uri()}/{run_id}", StoreConfig())
    store.push(step_dir, 1, run_id=run_id, config_hash="h", metrics={"entropy": 3.5, "step_s": 2.0})
    data = launcher.run_data(launcher.get_run(run_id))
    assert [(c.step, c.uri) for c in data.checkpoints] == [(1, f"{store_root.as_uri()}/{run_id}/step-1")]
    assert data.training == [{"step": 1, "entropy": 3.5, "step_s": 2.0}]
    assert data.evaluations == [] and data.report_html is None  # no report yet

    # The report step puts the report beside the steps; the dashboard serves its page and reads its results.
    report = tmp_path / "report"
    report.mkdir()
    evaluation = {"label": "step-1", "step": 1, "benchmark": "demo-add", "accuracy": 0.75}
    (report / "results.json").write_text(json.dumps({"results": [evaluation]}))
    (report / "report.html").write_text("<html>the report</html>")
    assert store.push_report(report) == f"{store_root.as_uri()}/{run_id}/report"
    data = launcher.run_data(launcher.get_run(run_id))
    assert data.evaluations == [evaluation]
    assert data.report_html and Path(data.report_html).read_text() == "<html>the report</html>"


def test_archive_and_delete_are_kfps_and_the_store_is_never_touched() -> None:
    client = RecordingKfpClient()
    launcher = make(client)
    run_id = launcher.start(tiny_config(**S3_CFG), Provenance())
    with pytest.raises(LaunchError, match="still running"):
        launcher.delete(run_id, with_store=False)
    client.runs[run_id].state = "SUCCEEDED"
    launcher.set_archived(run_id, True)
    assert launcher.get_run(run_id).archived
    launcher.set_archived(run_id, False)
    assert not launcher.get_run(run_id).archived
    with pytest.raises(LaunchError, match="does not delete a KFP run's checkpoints"):
        launcher.delete(run_id, with_store=True)
    with pytest.raises(LaunchError, match="no tags"):
        launcher.set_tags(run_id, ["x"])
    launcher.delete(run_id, with_store=False)
    assert [name for name, _ in client.calls if name.endswith("_run")] == ["archive_run", "unarchive_run", "delete_run"]
