"""SIGTERM to `pipeline run --local` while its train task runs: the stop reaches the task, the run is recorded
as stopped, and the same run id is then refused."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml
from fault_support import SIGTERM_EXIT, error_lines, finish, start, stop, wait_for

from tests.common import TINY_RUN


@pytest.mark.faults
def test_a_stopped_local_run_stops_its_tasks_and_says_stopped(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "train": {**TINY_RUN["train"], "stop_grace_s": 5.0}}))
    beacon = tmp_path / "beacon"
    argv = [
        "pipeline",
        "run",
        "--local",
        "--config",
        str(config),
        "--runs-root",
        str(tmp_path / "runs"),
        "--run-id",
        "r1",
    ]
    runner = start(argv, pause="rollout", beacon=beacon)  # the train task parks in its first rollout
    wait_for(beacon, runner, timeout=300)
    task_pid = int(beacon.read_text().split()[1])
    assert task_pid != runner.pid

    elapsed, err = stop(runner, timeout=120)

    assert runner.returncode == SIGTERM_EXIT, err[-2000:]
    assert "stopped by SIGTERM" in error_lines(err)[-1]
    assert elapsed < 5.0 + 10, f"{elapsed:.1f} s from SIGTERM to exit"
    deadline = time.monotonic() + 30
    while _alive(task_pid):
        assert time.monotonic() < deadline, "the train task outlived its runner"
        time.sleep(0.1)
    record = json.loads((tmp_path / "runs" / "r1" / "run.json").read_text())
    assert record["status"] == "stopped" and record["pid"] is None

    again = start(argv)
    err = finish(again, timeout=120)
    assert again.returncode == 2 and "run id 'r1' is already used" in err


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(")")[-1].split()[0] != "Z"
