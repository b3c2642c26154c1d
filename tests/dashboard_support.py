"""Dashboard test support (a pytest plugin: `pytest_plugins = ["dashboard_support"]`).

- `RecordingLauncher`: a test double of the launcher interface that keeps runs and schedules in memory and
  records every call, for API/page tests and the schedule browser test (the local launcher itself is tested
  for real, and drives the main browser flow).
- `finished_local_run`: one real local run of the tiny model, shared by the session.
- `chromium`: Debian's chromium, apt-installed on first use when /usr/bin/chromium is missing.
- `serve`: the app under uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from common import TINY_RUN
from kfp_server_api import models

from emtune.config import RunConfig, validate_config
from emtune.dashboard.launcher import LaunchError, RunData, RunInfo, RunNotFound, Schedule
from emtune.runs.local import Provenance

CHROMIUM = Path("/usr/bin/chromium")
REBIND_HOST = "rebind.example"
BASE_URL = "http://127.0.0.1:8080"  # the test client's Host: a loopback name, which every mode allows
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def tiny_config(**overrides: Any) -> RunConfig:
    from emtune.config import apply_overrides

    data = apply_overrides(validate_config(TINY_RUN).model_dump(mode="json"), overrides)
    return validate_config(data)


@dataclass
class RecordingLauncher:
    """The launcher interface in memory; `calls` lists (method, arguments) in order."""

    kind: str = "local"
    runs: dict[str, RunInfo] = field(default_factory=dict)
    data: dict[str, RunData] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def add_run(self, run_id: str, cfg: RunConfig, status: str = "succeeded", data: RunData | None = None,
                provenance: Provenance | None = None) -> RunInfo:  # fmt: skip
        run = RunInfo(
            run_id=run_id,
            name=cfg.run.name,
            status=status,
            created_at=f"2026-11-27T{7 + len(self.runs) // 60:02d}:{len(self.runs) % 60:02d}:00+00:00",
            finished_at=None if status in ("starting", "running") else "2026-11-27T08:00:00+00:00",
            provenance=provenance or Provenance("manual", "alice", None),
            config=cfg,
            pipeline_version="v-test",
        )
        self.runs[run_id] = run
        self.data[run_id] = data or RunData()
        return run

    def ready(self) -> bool:
        return True

    def list_runs(self) -> list[RunInfo]:
        return sorted(self.runs.values(), key=lambda run: run.created_at, reverse=True)

    def get_run(self, run_id: str) -> RunInfo:
        if run_id not in self.runs:
            raise RunNotFound(f"no run {run_id!r}")
        return self.runs[run_id]

    def start(self, cfg: RunConfig, provenance: Provenance) -> str:
        self.calls.append(("start", (cfg, provenance)))
        run_id = f"run-{len(self.runs) + 1}"
        self.add_run(run_id, cfg, status="running", provenance=provenance)
        return run_id

    def stop(self, run_id: str) -> None:
        self.calls.append(("stop", (run_id,)))
        run = self.get_run(run_id)
        if not run.active:
            raise LaunchError(f"run {run_id!r} is {run.status}, not running")
        run.status = "stopped"

    def set_archived(self, run_id: str, archived: bool) -> None:
        self.calls.append(("set_archived", (run_id, archived)))
        self.get_run(run_id).archived = archived

    def set_tags(self, run_id: str, tags: list[str]) -> None:
        self.calls.append(("set_tags", (run_id, tags)))
        self.get_run(run_id).tags = tags

    def delete(self, run_id: str, with_store: bool) -> None:
        self.calls.append(("delete", (run_id, with_store)))
        del self.runs[self.get_run(run_id).run_id]

    def log_tail(self, run_id: str, lines: int = 200) -> str:
        return self.logs.get(run_id, "")

    def checkpoint_files(self, run_id: str, step: int) -> dict[str, str]:
        return {}

    def run_data(self, run: RunInfo) -> RunData:
        return self.data[run.run_id]

    def list_schedules(self) -> list[Schedule]:
        return list(self.schedules.values())

    def create_schedule(self, name: str, cron: str, cfg: RunConfig, provenance: Provenance) -> str:
        self.calls.append(("create_schedule", (name, cron, cfg, provenance)))
        schedule_id = f"sched-{len(self.schedules) + 1}"
        self.schedules[schedule_id] = Schedule(schedule_id, name, cron, True, created_at="2026-11-27T08:00:00+00:00")
        return schedule_id

    def set_schedule_enabled(self, schedule_id: str, enabled: bool) -> None:
        self.calls.append(("set_schedule_enabled", (schedule_id, enabled)))
        self.schedules[schedule_id].enabled = enabled

    def delete_schedule(self, schedule_id: str) -> None:
        self.calls.append(("delete_schedule", (schedule_id,)))
        del self.schedules[schedule_id]


class RecordingKfpClient:
    """A stand-in for `kfp.Client` that records calls and answers with kfp_server_api's own models."""

    def __init__(self, declared: set[str] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.runs: dict[str, models.V2beta1Run] = {}
        self.recurring: dict[str, models.V2beta1RecurringRun] = {}
        self.declared = declared

    def _record(self, method: str, **kwargs: Any) -> None:
        self.calls.append((method, kwargs))

    def create_experiment(self, name: str, namespace: str | None = None) -> Any:
        self._record("create_experiment", name=name, namespace=namespace)
        return models.V2beta1Experiment(experiment_id="exp-1", display_name=name)

    def get_pipeline_id(self, name: str) -> str | None:
        return "pipe-1" if name == "emtune-pipeline" else None

    def list_pipeline_versions(self, pipeline_id: str, sort_by: str = "", page_size: int = 10) -> Any:
        self._record("list_pipeline_versions", pipeline_id=pipeline_id, sort_by=sort_by, page_size=page_size)
        spec: dict[str, Any] | None = (
            {"root": {"inputDefinitions": {"parameters": {name: {} for name in self.declared}}}}
            if self.declared
            else None
        )
        version = models.V2beta1PipelineVersion(
            pipeline_id=pipeline_id, pipeline_version_id="ver-9", pipeline_spec=spec
        )
        return models.V2beta1ListPipelineVersionsResponse(pipeline_versions=[version])

    def run_pipeline(self, **kwargs: Any) -> Any:
        self._record("run_pipeline", **kwargs)
        run_id = f"kfp-run-{len(self.runs) + 1}"
        self.runs[run_id] = models.V2beta1Run(
            run_id=run_id,
            display_name=kwargs["job_name"],
            state="RUNNING",
            created_at=dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.timezone.utc),
            finished_at=dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc),
            runtime_config=models.V2beta1RuntimeConfig(parameters=kwargs["params"]),
            pipeline_version_reference=models.V2beta1PipelineVersionReference(
                pipeline_id=kwargs["pipeline_id"], pipeline_version_id=kwargs["version_id"]
            ),
        )
        return self.runs[run_id]

    def list_runs(self, **kwargs: Any) -> Any:
        self._record("list_runs", **kwargs)
        return models.V2beta1ListRunsResponse(runs=list(self.runs.values()))

    def get_run(self, run_id: str) -> Any:
        if run_id not in self.runs:
            raise RuntimeError("(404) Reason: Not Found")
        return self.runs[run_id]

    def archive_run(self, run_id: str) -> None:
        self._record("archive_run", run_id=run_id)
        self.runs[run_id].storage_state = "ARCHIVED"

    def unarchive_run(self, run_id: str) -> None:
        self._record("unarchive_run", run_id=run_id)
        self.runs[run_id].storage_state = "AVAILABLE"

    def delete_run(self, run_id: str) -> None:
        self._record("delete_run", run_id=run_id)
        del self.runs[run_id]

    def terminate_run(self, run_id: str) -> None:
        self._record("terminate_run", run_id=run_id)
        self.runs[run_id].state = "CANCELING"

    def create_recurring_run(self, **kwargs: Any) -> Any:
        self._record("create_recurring_run", **kwargs)
        recurring_id = f"rr-{len(self.recurring) + 1}"
        self.recurring[recurring_id] = models.V2beta1RecurringRun(
            recurring_run_id=recurring_id,
            display_name=kwargs["job_name"],
            status="ENABLED",
            trigger=models.V2beta1Trigger(cron_schedule=models.V2beta1CronSchedule(cron=kwargs["cron_expression"])),
            runtime_config=models.V2beta1RuntimeConfig(parameters=kwargs["params"]),
        )
        return self.recurring[recurring_id]

    def list_recurring_runs(self, **kwargs: Any) -> Any:
        return models.V2beta1ListRecurringRunsResponse(recurring_runs=list(self.recurring.values()))

    def disable_recurring_run(self, recurring_run_id: str) -> None:
        self._record("disable_recurring_run", recurring_run_id=recurring_run_id)
        self.recurring[recurring_run_id].status = "DISABLED"

    def enable_recurring_run(self, recurring_run_id: str) -> None:
        self._record("enable_recurring_run", recurring_run_id=recurring_run_id)
        self.recurring[recurring_run_id].status = "ENABLED"

    def delete_recurring_run(self, recurring_run_id: str) -> None:
        self._record("delete_recurring_run", recurring_run_id=recurring_run_id)
        del self.recurring[recurring_run_id]


def sample_data() -> RunData:
    """Three steps of training metrics and an evaluation at steps 0, 1, 2 whose best step differs by benchmark."""
    from emtune.dashboard.launcher import Checkpoint

    training = [
        {"step": step, "entropy": entropy, "step_s": 1.5, "tokens_per_s": 100.0 + step}
        for step, entropy in ((1, 6.0), (2, 5.0), (3, 4.5))
    ]
    accuracy = {"demo-arith": (0.2, 0.6, 0.4), "demo-algebra": (0.1, 0.2, 0.3)}
    evaluations = [
        {"label": f"step-{step}", "step": step, "benchmark": bench, "accuracy": values[step]}
        for bench, values in accuracy.items()
        for step in range(3)
    ]
    checkpoints = [Checkpoint(step, f"s3://bucket/runs/r/step-{step}", {"entropy": 5.0}) for step in (1, 2)]
    return RunData(training=training, evaluations=evaluations, checkpoints=checkpoints)


def csrf_of(html: str) -> str:
    """The CSRF token a page carries (bound to the session that fetched it)."""
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, every_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


@pytest.fixture(scope="session")
def finished_local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(runs folder, run id) of one real tiny run started by the local launcher and finished."""
    from emtune.dashboard.local_launcher import LocalLauncher

    runs_dir = tmp_path_factory.mktemp("dashboard-runs")
    launcher = LocalLauncher(runs_dir)
    run_id = launcher.start(tiny_config(), Provenance("manual", "tester", None))
    wait_until(lambda: not launcher.get_run(run_id).active, 900, f"local run {run_id}")
    run = launcher.get_run(run_id)
    assert run.status == "succeeded", launcher.log_tail(run_id)[-3000:]
    return runs_dir, run_id


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; installed with apt-get on a machine that lacks it (CI's fresh machines)."""
    if not CHROMIUM.exists():
        apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in ([*apt, "update", "-q"], [*apt, "install", "-y", "-q", "chromium"]):
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
            assert done.returncode == 0, f"{' '.join(command)} failed: {done.stderr[-2000:]}"
    assert CHROMIUM.exists() and shutil.which(str(CHROMIUM))
    return CHROMIUM


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(chromium: Path, playwright_driver: Any) -> Iterator[Any]:
    instance = playwright_driver.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def rebinding_browser(chromium: Path, playwright_driver: Any) -> Iterator[Any]:
    """A browser for which the foreign name rebind.example resolves to 127.0.0.1 (DNS rebinding, no DNS)."""
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBIND_HOST} 127.0.0.1"]
    instance = playwright_driver.chromium.launch(executable_path=str(chromium), args=args)
    yield instance
    instance.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a thread; yields its base URL and stops it afterwards."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, "the dashboard to listen", every_s=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def screenshot(page: Any, name: str) -> None:
    """Save a full-page screenshot when EMTUNE_DASHBOARD_SCREENSHOTS names a folder (the README's come from it)."""
    folder = os.environ.get("EMTUNE_DASHBOARD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
