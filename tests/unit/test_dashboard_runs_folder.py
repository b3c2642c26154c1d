"""Nothing in a run folder is trusted: the real local launcher and app over a runs folder full of garbage and
crafted records (no pipeline runs here: the folders are written by the test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_support import BASE_URL, csrf_of, tiny_config
from fastapi.testclient import TestClient

from emtune.config import dump_config
from emtune.dashboard.app import create_app
from emtune.dashboard.launcher import LaunchError
from emtune.dashboard.local_launcher import LocalLauncher, _proc_identity
from emtune.dashboard.settings import DashboardSettings

pytest_plugins = ["dashboard_support"]

GOOD = "20260101-000000-good00"


def record(run_id: str, **fields: object) -> dict[str, object]:
    return {"run_id": run_id, "run_dir": f"/elsewhere/{run_id}", "status": "succeeded", "config": "",
            "config_hash": "h", "created_at": "2026-01-01T00:00:00+00:00", **fields}  # fmt: skip


def write_run(runs: Path, run_id: str, content: str | bytes, config: bool = True) -> Path:
    run_dir = runs / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    if config:
        (run_dir / "request.yaml").write_text(dump_config(tiny_config()))
    return run_dir


@pytest.fixture
def garbage(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    write_run(runs, GOOD, json.dumps(record(GOOD)))
    write_run(runs, "20260101-000001-half00", '{"run_id": "20260101-000001-half00", "sta')
    write_run(runs, "20260101-000002-bin000", b"\x00\xff\xfe binary")
    write_run(runs, "20260101-000003-list00", "[1, 2, 3]")
    write_run(runs, "20260101-000004-extra0", json.dumps(record("x", surprise_key=1)))
    write_run(runs, "20260101-000005-nodate", json.dumps({k: v for k, v in record("x").items() if k != "created_at"}))
    write_run(runs, "20260101-000006-moved0", json.dumps(record("20250101-000000-oldnam")))  # renamed with mv
    write_run(runs, "20260101-000007-deep00", "[" * 50_000 + "]" * 50_000)
    write_run(runs, "20260101-000008-badcfg", json.dumps(record("x")), config=False)
    (runs / "20260101-000008-badcfg" / "request.yaml").write_text("model: [unclosed")
    bomb = write_run(runs, "20260101-000010-bomb00", json.dumps(record("x")), config=False)
    layers = "".join(f"l{i + 1}: &l{i + 1} [{', '.join([f'*l{i}'] * 9)}]\n" for i in range(12))
    (bomb / "request.yaml").write_text("l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + layers)  # a billion laughs
    outside = tmp_path / "outside-run"
    outside.mkdir()
    (outside / "run.json").write_text(json.dumps(record("20260101-000009-link00")))
    (runs / "20260101-000009-link00").symlink_to(outside)  # a symlinked run folder
    return runs


def test_a_garbage_runs_folder_leaves_every_page_serving(garbage: Path) -> None:
    client = TestClient(create_app(DashboardSettings(runs_dir=garbage)), base_url=BASE_URL)
    for path in ("/", "/runs/table", "/api/runs", "/schedules"):
        assert client.get(path).status_code == 200, path
    runs = {run["run_id"]: run for run in client.get("/api/runs").json()}
    assert len(runs) == 11
    assert runs["20260101-000010-bomb00"]["status"] == "succeeded"  # its config refused, not expanded
    assert runs[GOOD]["status"] == "succeeded"
    unreadable = {run_id for run_id, run in runs.items() if run["status"] == "unreadable"}
    assert unreadable == {
        "20260101-000001-half00",
        "20260101-000002-bin000",
        "20260101-000003-list00",
        "20260101-000005-nodate",
        "20260101-000007-deep00",
        "20260101-000009-link00",
    }
    assert "not an object" in runs["20260101-000003-list00"]["error"]
    assert "symlink" in runs["20260101-000009-link00"]["error"]
    # An unknown key is ignored, a renamed folder is the run of its new name, an unreadable config is no config.
    assert runs["20260101-000004-extra0"]["status"] == "succeeded"
    assert runs["20260101-000006-moved0"]["status"] == "succeeded"
    for run_id in runs:
        assert client.get(f"/runs/{run_id}").status_code == 200, run_id
        assert client.get(f"/api/runs/{run_id}").status_code == 200, run_id
    assert "unreadable" in client.get("/").text


def test_run_json_cannot_name_the_report_or_the_logs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_dir = write_run(runs, GOOD, json.dumps(record(GOOD, report="/etc/passwd", log="/etc/passwd")))

    def client() -> TestClient:  # a new app each time: a finished run's data is read once per app
        return TestClient(create_app(DashboardSettings(runs_dir=runs)), base_url=BASE_URL)

    assert client().get(f"/runs/{GOOD}/report").status_code == 404
    # A report where the report task writes it is served, but not through a symlink.
    report_dir = run_dir / "pipeline_root" / "emtune-pipeline-2026" / "report" / "Output"
    report_dir.mkdir(parents=True)
    (report_dir / "report.html").symlink_to("/etc/passwd")
    assert client().get(f"/runs/{GOOD}/report").status_code == 404
    # ... nor through a symlinked folder on the way to it.
    elsewhere = tmp_path / "elsewhere" / "Output"
    elsewhere.mkdir(parents=True)
    (elsewhere / "report.html").write_text("<p>planted elsewhere</p>")
    linked = run_dir / "pipeline_root" / "emtune-pipeline-2027" / "report"
    linked.mkdir(parents=True)
    (linked / "Output").symlink_to(elsewhere, target_is_directory=True)
    assert client().get(f"/runs/{GOOD}/report").status_code == 404
    (linked / "Output").unlink()
    (report_dir / "report.html").unlink()
    (report_dir / "report.html").write_text("<p>the report</p>")
    assert client().get(f"/runs/{GOOD}/report").text == "<p>the report</p>"
    # A symlinked log is not read.
    (run_dir / "pipeline.log").symlink_to("/etc/passwd")
    assert LocalLauncher(runs).log_tail(GOOD) == ""


@pytest.fixture
def foreign_process() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_stop_never_signals_a_process_the_launcher_did_not_start(
    tmp_path: Path, foreign_process: subprocess.Popen[bytes]
) -> None:
    runs = tmp_path / "runs"
    run_dir = write_run(runs, GOOD, json.dumps(record(GOOD, status="running", pid=foreign_process.pid)))
    launcher = LocalLauncher(runs)
    identity = _proc_identity(foreign_process.pid)
    assert identity is not None
    start, cmdline = identity
    forged_cmdline = [sys.executable, "-m", "emtune", "pipeline", "run", "--local", "--run-id", GOOD,
                      "--runs-root", str(runs.resolve())]  # fmt: skip
    for pid_file in (
        str(foreign_process.pid),  # the old format: a bare pid
        json.dumps({"pid": foreign_process.pid, "start": start, "cmdline": cmdline}),  # not an emtune run
        json.dumps({"pid": foreign_process.pid, "start": start, "cmdline": forged_cmdline}),  # not its cmdline
        json.dumps({"pid": foreign_process.pid, "start": "1", "cmdline": cmdline}),  # not its start time
    ):
        (run_dir / "pipeline.pid").write_text(pid_file)
        with pytest.raises(LaunchError, match="not started by a dashboard"):
            launcher.stop(GOOD)
        assert foreign_process.poll() is None, pid_file  # still running: never signalled
    # The same through the app: a one-line 400, and the process lives on.
    client = TestClient(create_app(DashboardSettings(runs_dir=runs)), base_url=BASE_URL)
    response = client.post(f"/api/runs/{GOOD}/stop", json={})
    assert response.status_code == 400 and "not started by a dashboard" in response.json()["detail"]
    assert foreign_process.poll() is None


def test_curves_grow_while_metrics_jsonl_grows_and_the_log_shows_task_lines(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_dir = write_run(runs, GOOD, json.dumps(record(GOOD, status="running", pid=os.getpid())))
    (run_dir / "train").mkdir()
    metrics = run_dir / "train" / "metrics.jsonl"
    (run_dir / "console.log").write_text("local pipeline run x\n  prep started\n  prep succeeded in 1.0 s\n")
    (run_dir / "pipeline.log").write_text('{"executor": "json"}\n')
    client = TestClient(create_app(DashboardSettings(runs_dir=runs)), base_url=BASE_URL)

    def entropy_steps() -> list[int]:
        html = client.get(f"/runs/{GOOD}/curves").text
        blocks = re.findall(r'<script type="application/json" class="chart-data">(.*?)</script>', html, re.S)
        charts = {chart["id"]: chart for chart in map(json.loads, blocks)}
        return list(charts["entropy"]["x"]) if "entropy" in charts else []

    assert entropy_steps() == []
    metrics.write_text('{"step": 1, "entropy": 6.0}\n')
    assert entropy_steps() == [1]
    with metrics.open("a") as handle:
        handle.write('{"step": 2, "entropy": 5.5}\n{"step": 3, "entr')  # the last line half-written
    assert entropy_steps() == [1, 2]
    page = client.get(f"/runs/{GOOD}").text
    assert "prep succeeded in 1.0 s" in page and '"executor"' not in page
    assert 'hx-get="/runs/' + GOOD + '/curves"' in page


def test_tags_archive_and_delete_with_confirmation(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_dir = write_run(runs, GOOD, json.dumps(record(GOOD)))
    (run_dir / "store" / "x" / "step-1").mkdir(parents=True)
    (run_dir / "store" / "x" / "step-1" / "model.safetensors").write_bytes(b"w")
    other = write_run(runs, "20260101-000001-other0", json.dumps(record("x")))
    client = TestClient(create_app(DashboardSettings(runs_dir=runs)), base_url=BASE_URL)
    token = csrf_of(client.get("/").text)
    assert (
        client.post(f"/runs/{GOOD}/tags", data={"csrf_token": token, "tags": "baseline, lr-sweep"}).status_code == 200
    )
    assert client.post(f"/runs/{GOOD}/tags", data={"csrf_token": token, "tags": "<script>"}).status_code == 400
    assert client.get(f"/api/runs/{GOOD}").json()["tags"] == ["baseline", "lr-sweep"]
    assert GOOD in client.get("/?q=lr-sweep").text
    client.post(f"/runs/{GOOD}/archive", data={"csrf_token": token, "archived": "true"})
    assert f'data-run-id="{GOOD}"' not in client.get("/").text  # hidden from the default list
    assert f'data-run-id="{GOOD}"' in client.get("/?archived=1").text
    # Delete needs the run id typed back; without the box the checkpoints stay.
    refused = client.post(f"/runs/{GOOD}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert refused.status_code == 400 and run_dir.joinpath("run.json").exists()
    client.post(f"/runs/{GOOD}/delete", data={"csrf_token": token, "confirm": GOOD})
    assert not (run_dir / "run.json").exists() and (run_dir / "store" / "x" / "step-1" / "model.safetensors").exists()
    assert [run["run_id"] for run in client.get("/api/runs").json()] == [other.name]
    client.post(f"/runs/{other.name}/delete", data={"csrf_token": token, "confirm": other.name, "with_store": "true"})
    assert not other.exists()


def test_a_running_run_cannot_be_deleted_or_archived(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, GOOD, json.dumps(record(GOOD, status="running", pid=os.getpid())))
    launcher = LocalLauncher(runs)
    for action in (lambda: launcher.delete(GOOD, False), lambda: launcher.set_archived(GOOD, True)):
        with pytest.raises(LaunchError, match="stop it before"):
            action()
    assert (runs / GOOD / "run.json").exists()


def test_checkpoint_files_of_the_runs_own_store_download(tmp_path: Path) -> None:
    from emtune.config.store import StoreConfig
    from emtune.store import open_store

    runs = tmp_path / "runs"
    run_dir = write_run(runs, GOOD, json.dumps(record(GOOD)))
    step = tmp_path / "step"
    step.mkdir()
    (step / "model.safetensors").write_bytes(b"weights")
    store_uri = (run_dir / "store" / "dash").resolve().as_uri()
    open_store(store_uri, StoreConfig()).push(step, 1, run_id=GOOD, config_hash="h", metrics={"entropy": 3.0})
    client = TestClient(create_app(DashboardSettings(runs_dir=runs)), base_url=BASE_URL)
    page = client.get(f"/runs/{GOOD}").text
    assert f'href="/runs/{GOOD}/checkpoints/1/model.safetensors"' in page and 'class="copy"' in page
    download = client.get(f"/runs/{GOOD}/checkpoints/1/model.safetensors")
    assert download.content == b"weights" and "attachment" in download.headers["content-disposition"]
    for name in ("../../run.json", "nope", "..%2F..%2Frun.json"):
        assert client.get(f"/runs/{GOOD}/checkpoints/1/{name}").status_code == 404, name
    # A symlink planted beside the step's files is not served.
    (files,) = (run_dir / "store" / "dash" / "step-1").glob("files-*")
    (files / "passwd").symlink_to("/etc/passwd")
    fresh = TestClient(create_app(DashboardSettings(runs_dir=runs)), base_url=BASE_URL)
    assert fresh.get(f"/runs/{GOOD}/checkpoints/1/passwd").status_code == 404


def test_the_local_launcher_owns_the_store(tmp_path: Path) -> None:
    """A source config (read from a run folder) naming a store elsewhere still writes into the run's own folder."""
    from emtune.config import load_config
    from emtune.runs.local import Provenance

    launcher = LocalLauncher(tmp_path / "runs", python="true")  # `true -m emtune ...`: starts and exits at once
    run_id = launcher.start(tiny_config(**{"store.uri": "file:///anywhere"}), Provenance("api", "eve", None))
    assert load_config(tmp_path / "runs" / run_id / "request.yaml").store.uri is None
