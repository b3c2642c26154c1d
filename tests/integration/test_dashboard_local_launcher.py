"""The local launcher for real: `emtune pipeline run --local` in a background process on the tiny model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from dashboard_support import tiny_config, wait_until

from emtune.dashboard.launcher import LaunchError, RunNotFound
from emtune.dashboard.local_launcher import LocalLauncher
from emtune.runs.local import Provenance, RunRecord, save_record

pytest_plugins = ["dashboard_support"]


def test_a_started_run_is_listed_finishes_and_shows_what_it_produced(finished_local_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_local_run
    launcher = LocalLauncher(runs_dir)
    (run,) = [run for run in launcher.list_runs() if run.run_id == run_id]
    assert run.status == "succeeded" and run.finished_at
    assert (run.provenance.trigger, run.provenance.requested_by, run.provenance.parent_run) == (
        "manual",
        "tester",
        None,
    )
    record = json.loads((runs_dir / run_id / "run.json").read_text())
    assert record["trigger"] == "manual" and record["requested_by"] == "tester" and record["pid"] is None
    # The config as requested (what a retrain starts from), not its placement under the run folder.
    assert run.config is not None and run.config.train.max_steps == 2 and run.config.store.uri is None

    data = launcher.run_data(run)
    assert [row["step"] for row in data.training] == [1, 2]
    assert all(row["entropy"] > 0 for row in data.training)
    assert {(e["step"], e["benchmark"]) for e in data.evaluations} == {
        (step, bench) for step in (0, 1, 2) for bench in ("demo-arith", "demo-algebra")
    }
    assert [c.step for c in data.checkpoints] == [1, 2]
    assert all(c.uri.startswith((runs_dir / run_id / "store").resolve().as_uri()) for c in data.checkpoints)
    assert data.report_html and Path(data.report_html).is_file()
    assert launcher.log_tail(run_id, lines=5)  # the pipeline's own output, captured
    with pytest.raises(LaunchError, match="not running"):
        launcher.stop(run_id)


def test_stop_ends_the_run_and_every_process_it_started(tmp_path: Path) -> None:
    launcher = LocalLauncher(tmp_path)
    run_id = launcher.start(tiny_config(**{"train.max_steps": 500}), Provenance("dashboard", "ann", None))
    record_file = tmp_path / run_id / "run.json"
    wait_until(lambda: json.loads(record_file.read_text())["status"] == "running", 300, "the pipeline to start")
    pid = json.loads((tmp_path / run_id / "pipeline.pid").read_text())["pid"]
    # A dashboard restarted meanwhile (another launcher) still stops it: the recorded process is the same one.
    LocalLauncher(tmp_path).stop(run_id)
    run = launcher.get_run(run_id)
    assert run.status == "stopped" and run.finished_at and not run.active
    # No process of the run's group is left running. (Zombies are dead: where PID 1 reaps nothing, as in some
    # containers, the component processes kfp.local started linger as zombies after their parent is gone.)
    wait_until(lambda: not live_members(pid), 30, "the run's process group to end")


def live_members(pgid: int) -> list[int]:
    """Processes of process group `pgid` that are not zombies (from /proc: state is field 3, pgrp field 5)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_a_run_whose_process_died_is_marked_failed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    run_dir = tmp_path / "20260101-000000-dead00"
    run_dir.mkdir()
    save_record(RunRecord("20260101-000000-dead00", str(run_dir), "running", "", "h", "2026-01-01T00:00:00+00:00",
                          pid=dead.pid))  # fmt: skip
    (run,) = LocalLauncher(tmp_path).list_runs()
    assert run.status == "failed" and "exited without recording its end" in (run.error or "")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("run_id", ["../etc", "nope", ".hidden", "a/b"])
def test_unknown_or_unsafe_run_ids_are_not_found(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(RunNotFound):
        LocalLauncher(tmp_path).get_run(run_id)
