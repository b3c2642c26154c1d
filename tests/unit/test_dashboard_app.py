"""Dashboard pages and JSON API with FastAPI's test client, over the launcher test double."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from dashboard_support import BASE_URL, RecordingLauncher, csrf_of, sample_data, tiny_config
from fastapi.testclient import TestClient

from emtune.dashboard.app import create_app
from emtune.dashboard.settings import DashboardSettings
from emtune.runs.local import Provenance

pytest_plugins = ["dashboard_support"]


@pytest.fixture
def launcher() -> RecordingLauncher:
    double = RecordingLauncher()
    double.add_run("base", tiny_config(), data=sample_data())
    double.add_run("other", tiny_config(**{"train.learning_rate": 0.01, "train.max_steps": 3}), data=sample_data())
    return double


@pytest.fixture
def client(launcher: RecordingLauncher, tmp_path: Path) -> TestClient:
    return TestClient(create_app(DashboardSettings(runs_dir=tmp_path), launcher), base_url=BASE_URL)


def csrf(client: TestClient) -> str:
    return csrf_of(client.get("/").text)


def chart_data(html: str) -> dict[str, dict]:
    blocks = re.findall(r'<script type="application/json" class="chart-data">(.*?)</script>', html, re.S)
    return {chart["id"]: chart for chart in map(json.loads, blocks)}


def test_health_and_readiness_need_no_auth(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "launcher": "local"}


def test_runs_list_shows_status_params_best_step_and_provenance(
    client: TestClient, launcher: RecordingLauncher
) -> None:
    launcher.add_run("live", tiny_config(), status="running")
    html = client.get("/").text
    assert 'data-run-id="base"' in html and 'data-run-id="other"' in html
    assert "demo-arith: step 1 (60.0%)" in html and "demo-algebra: step 2 (30.0%)" in html
    assert "0.01" in html and "alice" in html and "manual" in html
    # Polling while a run is active, and none once every run has finished.
    assert 'hx-get="/runs/table?' in html
    launcher.runs["live"].status = "succeeded"
    assert 'hx-get="/runs/table' not in client.get("/runs/table").text


def test_detail_page_charts_carry_the_series(client: TestClient) -> None:
    html = client.get("/runs/base").text
    charts = chart_data(html)
    assert charts["entropy"]["x"] == [1, 2, 3]
    assert charts["entropy"]["series"][0]["values"] == [6.0, 5.0, 4.5]
    accuracy = {s["label"]: s["values"] for s in charts["accuracy"]["series"]}
    assert accuracy["demo-arith"] == pytest.approx([20.0, 60.0, 40.0])
    assert accuracy["demo-arith best"] == [None, pytest.approx(60.0), None]  # the best step, marked
    assert accuracy["demo-algebra best"] == [None, None, pytest.approx(30.0)]
    assert charts["throughput"]["series"][0]["values"] == [101.0, 102.0, 103.0]
    assert charts["step_time"]["series"][0]["values"] == [1.5, 1.5, 1.5]
    assert "s3://bucket/runs/r/step-2" in html  # checkpoint table
    assert "v-test" in html  # lineage: pipeline version


def test_api_mirrors_the_pages(client: TestClient) -> None:
    runs = client.get("/api/runs").json()
    assert [run["run_id"] for run in runs] == ["other", "base"]
    detail = client.get("/api/runs/base").json()
    assert detail["best"]["demo-arith"] == {"step": 1, "accuracy": 0.6}
    assert detail["config"]["train"]["learning_rate"] == 1e-3
    assert [c["step"] for c in detail["checkpoints"]] == [1, 2]
    assert client.get("/api/runs/nope").status_code == 404


def test_retrain_invalid_value_shows_the_field_error_and_starts_nothing(
    client: TestClient, launcher: RecordingLauncher
) -> None:
    form = client.get("/runs/base/retrain").text
    assert 'name="train.learning_rate" value="0.001"' in form  # prefilled from the run
    assert "Peak learning rate of AdamW." in form and "Allowed: &gt; 0, ≤ 1." in form  # help and range from the model
    response = client.post(
        "/runs/base/retrain", data={"csrf_token": csrf(client), "train.learning_rate": "7", "idempotency_key": "k1"}
    )
    assert response.status_code == 422
    assert 'data-field="train.learning_rate"' in response.text
    assert "train.learning_rate = &#39;7&#39;: Input should be less than or equal to 1 (allowed: &gt; 0, ≤ 1)" in (
        response.text
    )
    assert not [call for call in launcher.calls if call[0] == "start"]


def test_retrain_preview_shows_the_diff(client: TestClient) -> None:
    token = csrf(client)
    text = client.post("/runs/base/retrain/preview", data={"csrf_token": token, "train.learning_rate": "0.002"}).text
    assert 'data-key="train.learning_rate"' in text and "0.002" in text
    assert "No change" in client.post("/runs/base/retrain/preview", data={"csrf_token": token}).text
    text = client.post("/runs/base/retrain/preview", data={"csrf_token": token, "advanced": "eval: {nope: 1}"}).text
    assert "unknown config key &#39;eval.nope&#39;" in text


def test_retrain_starts_one_run_per_idempotency_key(client: TestClient, launcher: RecordingLauncher) -> None:
    form = {"csrf_token": csrf(client), "train.learning_rate": "0.002", "idempotency_key": "same"}
    first = client.post("/runs/base/retrain", data=form, follow_redirects=False)
    second = client.post("/runs/base/retrain", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    starts = [args for name, args in launcher.calls if name == "start"]
    assert len(starts) == 1
    cfg, provenance = starts[0]
    assert cfg.train.learning_rate == 0.002 and cfg.train.max_steps == 2  # the rest from the source run
    assert (provenance.trigger, provenance.requested_by, provenance.parent_run) == ("dashboard", "local", "base")


def test_posts_need_the_csrf_token(client: TestClient, launcher: RecordingLauncher) -> None:
    launcher.add_run("live", tiny_config(), status="running")
    client.get("/")
    assert client.post("/runs/live/stop", data={}).status_code == 403
    assert client.post("/runs/live/stop", data={"csrf_token": "forged"}).status_code == 403
    assert not launcher.calls
    ok = client.post("/runs/live/stop", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert ok.status_code == 303 and launcher.calls == [("stop", ("live",))]


def test_api_start_validates_with_the_run_config(client: TestClient, launcher: RecordingLauncher) -> None:
    bad = client.post("/api/runs", json={"source_run": "base", "overrides": {"train.learning_rate": 2}})
    assert bad.status_code == 422 and "train.learning_rate" in bad.json()["detail"]
    assert client.post("/api/runs", content="x=1", headers={"content-type": "text/plain"}).status_code == 415
    forged = client.post("/api/runs", json={"source_run": "base", "trigger": "schedule"})
    assert forged.status_code == 422 and "recorded by the server" in forged.json()["detail"]
    ok = client.post("/api/runs", json={"source_run": "base", "overrides": {"train.max_steps": 5}})
    assert ok.status_code == 201
    (cfg, provenance), *_ = [args for name, args in launcher.calls if name == "start"]
    assert cfg.train.max_steps == 5 and provenance.trigger == "api" and provenance.parent_run == "base"


def test_compare_overlays_curves_and_diffs_parameters(client: TestClient) -> None:
    html = client.get("/compare?run=base&run=other").text
    charts = chart_data(html)
    assert [s["label"] for s in charts["entropy"]["series"]] == ["base", "other"]
    assert {s["label"] for s in charts["accuracy"]["series"]} >= {"base: demo-arith", "other: demo-algebra"}
    assert 'data-key="train.learning_rate"' in html and 'data-key="train.max_steps"' in html
    assert 'data-key="train.temperature"' not in html  # equal values are not a difference


def test_schedules_create_pause_resume_delete(client: TestClient, launcher: RecordingLauncher) -> None:
    token = csrf(client)
    client.post("/schedules", data={"csrf_token": token, "name": "nightly", "cron": "0 3 * * *", "source_run": "base"})
    (name, cron, cfg, provenance) = launcher.calls[-1][1]
    assert (name, cron, cfg.train.learning_rate, provenance.trigger) == ("nightly", "0 3 * * *", 1e-3, "schedule")
    assert "nightly" in client.get("/schedules").text
    client.post("/schedules/sched-1/pause", data={"csrf_token": token})
    assert launcher.schedules["sched-1"].enabled is False
    client.post("/schedules/sched-1/resume", data={"csrf_token": token})
    client.post("/schedules/sched-1/delete", data={"csrf_token": token})
    assert [c[0] for c in launcher.calls[-3:]] == ["set_schedule_enabled", "set_schedule_enabled", "delete_schedule"]
    assert not launcher.schedules


def test_every_action_writes_an_audit_line(
    client: TestClient, launcher: RecordingLauncher, caplog: pytest.LogCaptureFixture
) -> None:
    launcher.add_run("live", tiny_config(), status="running")
    with caplog.at_level(logging.INFO, logger="emtune.dashboard.audit"):
        token = csrf(client)
        client.post("/runs/live/stop", data={"csrf_token": token})
        client.post("/runs/base/retrain", data={"csrf_token": token, "train.max_steps": "4", "idempotency_key": "a"})
    lines = [r.getMessage() for r in caplog.records if r.name == "emtune.dashboard.audit"]
    assert any(line.startswith("user=local action=stop") and "run=live" in line for line in lines)
    assert any(line.startswith("user=local action=start") and "parent=base" in line for line in lines)


def test_secrets_in_config_values_are_never_rendered(client: TestClient, launcher: RecordingLauncher) -> None:
    cfg = tiny_config(**{"store.endpoint_url": "http://AKIAKEY:s3cr3t-value@minio:9000"})
    launcher.add_run("secret", cfg, data=sample_data())
    for path in ("/runs/secret", "/runs/secret/retrain", "/api/runs/secret", "/compare?run=secret&run=base"):
        body = client.get(path).text
        assert "s3cr3t-value" not in body and "AKIAKEY" not in body, path
    # Submitting the form unchanged keeps the real value (the page only ever showed the redacted one).
    client.post("/runs/secret/retrain", data={"csrf_token": csrf(client), "idempotency_key": "s",
                                              "store.endpoint_url": "http://***@minio:9000"})  # fmt: skip
    cfg_started = launcher.calls[-1][1][0]
    assert cfg_started.store.endpoint_url == "http://AKIAKEY:s3cr3t-value@minio:9000"


def test_unknown_run_is_404_page(client: TestClient) -> None:
    response = client.get("/runs/nope")
    assert response.status_code == 404 and "no run" in response.text


def test_static_assets_are_served_from_the_package(client: TestClient) -> None:
    for asset in ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css", "charts.js"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert "uPlot" in client.get("/static/uPlot.iife.min.js").text[:200]


def test_a_running_run_shows_its_log_tail_and_reloads_once_when_it_ends(
    client: TestClient, launcher: RecordingLauncher
) -> None:
    launcher.add_run("live", tiny_config(), status="running", data=sample_data())
    launcher.logs["live"] = "step 3/20 entropy 4.5"
    page = client.get("/runs/live").text
    assert 'hx-get="/runs/live/live"' in page and "step 3/20 entropy 4.5" in page
    live = client.get("/runs/live/live")
    assert "step 3/20 entropy 4.5" in live.text and "HX-Refresh" not in live.headers
    launcher.runs["live"].status = "succeeded"
    ended = client.get("/runs/live/live")
    assert ended.headers["HX-Refresh"] == "true"  # the page reloads with the final results, and polls no more
    assert 'hx-get="/runs/live/live"' not in client.get("/runs/live").text


def test_the_run_page_shows_the_promotion_decision(
    launcher: RecordingLauncher, client: TestClient, tmp_path: Path
) -> None:
    from promote_support import write_eval

    from emtune.dashboard.launcher import RunData
    from emtune.report.build import run as build_report

    base = [2, 3, 4, 5] * 10
    evals = write_eval(tmp_path / "eval", "s3://b/run", {0: base, 2: [c + 2 for c in base]})
    report = build_report([evals], tmp_path / "report")
    launcher.add_run("promoted", tiny_config(), data=RunData(report_html=str(report / "report.html")))
    page = client.get("/runs/promoted").text
    assert "<h2>Promotion</h2>" in page and "PROMOTED: gain +25.0 points" in page
    assert "amc23 (40 problems)" in page
    assert "<h2>Promotion</h2>" not in client.get("/runs/base").text  # no report, no decision


def test_runs_list_pages_sorts_and_filters(client: TestClient, launcher: RecordingLauncher) -> None:
    for index in range(60):
        launcher.add_run(f"r{index:02d}", tiny_config(), status=("failed", "succeeded")[index % 2],
                         provenance=Provenance("api", f"user{index % 3}", None))  # fmt: skip
    html = client.get("/").text
    assert html.count('<tr data-run-id="') == 50 and 'data-total="62"' in html and 'data-pages="2"' in html
    second = client.get("/?page=2").text
    assert second.count('<tr data-run-id="') == 12
    failed = client.get("/?status=failed&q=user1&per_page=100").text
    ids = re.findall(r'<tr data-run-id="([^"]+)"', failed)
    assert ids and all(launcher.runs[i].status == "failed" and launcher.runs[i].provenance.requested_by == "user1"
                       for i in ids)  # fmt: skip
    ascending = re.findall(r'<tr data-run-id="([^"]+)"', client.get("/?sort=run_id&order=asc&per_page=25").text)
    assert ascending == sorted(ascending) and ascending[0] == "base"
    # Malformed query values fall back to defaults: the list always shows.
    assert client.get("/?page=x&per_page=7&sort=__class__").status_code == 200
    assert [r["run_id"] for r in client.get("/api/runs?per_page=25&page=3").json()] == [
        run.run_id for run in launcher.list_runs()[50:62]
    ]


def test_compare_has_a_metrics_table_and_warns_when_eval_settings_differ(
    client: TestClient, launcher: RecordingLauncher
) -> None:
    html = client.get("/compare?run=base&run=other").text
    assert 'data-metric="demo-arith"' in html and "60.0% (step 1)" in html
    assert 'data-metric="final-entropy"' in html and "4.500" in html
    assert 'id="eval-warning"' not in html  # same eval settings
    launcher.add_run("fewer", tiny_config(**{"eval.limit": 3}), data=sample_data())
    warned = client.get("/compare?run=base&run=fewer").text
    assert 'id="eval-warning"' in warned and "eval.limit" in warned


def test_the_retrain_form_leads_with_the_common_parameters(tmp_path: Path, launcher: RecordingLauncher) -> None:
    html = (
        TestClient(create_app(DashboardSettings(runs_dir=tmp_path), launcher), base_url=BASE_URL)
        .get("/runs/base/retrain")
        .text
    )
    common = html[html.index('id="common-fields"') : html.index('id="more-fields"')]
    for key in ("train.learning_rate", "train.max_steps", "train.rollouts_per_step", "train.temperature", "data.text"):
        assert f'name="{key}"' in common, key
    for key in ("model.trust_remote_code", "store.uri", "data.source", "model.path"):
        assert f'name="{key}"' not in html, key  # outside the policy: no input at all
    assert 'name="eval.limit"' in html[html.index('id="more-fields"') :]
    widened = create_app(DashboardSettings(runs_dir=tmp_path, retrain_allow=["data.source"]), launcher)
    assert 'name="data.source"' in TestClient(widened, base_url=BASE_URL).get("/runs/base/retrain").text
