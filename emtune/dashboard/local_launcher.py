"""The local launcher: runs under a runs folder, each started as `emtune pipeline run --local` in a background
process of its own (its own process group, so stopping it stops its component subprocesses too).

The runs folder is the only state: each run's `run.json` (emtune.runs.local) says what it is, its
`pipeline.log` (written by the run) holds every task's output, `console.log` the command's own output (task lines,
errors before the pipeline starts) for runs started here, and `pipeline.pid` their process id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from emtune.config import RunConfig, dump_config, load_config
from emtune.dashboard.launcher import ACTIVE, LaunchError, RunData, RunInfo, RunNotFound, Schedule
from emtune.dashboard.rundata import evaluations_under, store_checkpoints
from emtune.errors import EmtuneError
from emtune.fsutil import atomic_write_text
from emtune.report.collect import training_rows
from emtune.runs.local import (
    CONFIG_FILE,
    LOG_FILE,
    RECORD_FILE,
    REQUEST_FILE,
    Provenance,
    RunRecord,
    check_run_id,
    list_runs,
    load_record,
    new_run_id,
    save_record,
    utc_now,
)
from emtune.store import split_step_uri

log = logging.getLogger(__name__)

CONSOLE_FILE = "console.log"
PID_FILE = "pipeline.pid"
STOP_GRACE_S = 15.0


class LocalLauncher:
    kind = "local"

    def __init__(self, runs_dir: Path, python: str = sys.executable) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.python = python
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # runs started by this process
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- runs
    def ready(self) -> bool:
        return self.runs_dir.is_dir() and os.access(self.runs_dir, os.R_OK | os.W_OK)

    def list_runs(self) -> list[RunInfo]:
        return [self._info(self._settle(record)) for record in reversed(list_runs(self.runs_dir))]

    def get_run(self, run_id: str) -> RunInfo:
        return self._info(self._settle(self._record(run_id)))

    def start(self, cfg: RunConfig, provenance: Provenance) -> str:
        run_id = new_run_id()
        run_dir = self.runs_dir / run_id
        request = run_dir / REQUEST_FILE
        atomic_write_text(request, dump_config(cfg))
        with self._lock:  # a concurrent listing must not see the record before the process is known
            self._spawn(run_id, request, cfg, provenance)
        return run_id

    def _spawn(self, run_id: str, request: Path, cfg: RunConfig, provenance: Provenance) -> None:
        run_dir = request.parent
        # Recorded before the process exists, so the run is listed at once and a start that dies is seen.
        save_record(RunRecord.begin(run_dir, "starting", cfg.digest(), provenance))
        command = [self.python, "-m", "emtune", "pipeline", "run", "--local", "--config", str(request)]
        command += ["--runs-root", str(self.runs_dir), "--run-id", run_id, "--trigger", provenance.trigger]
        command += ["--requested-by", provenance.requested_by or "unknown"]
        if provenance.parent_run:
            command += ["--parent-run", provenance.parent_run]
        with (run_dir / CONSOLE_FILE).open("ab") as log_file:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        atomic_write_text(run_dir / PID_FILE, str(child.pid))
        self._children[run_id] = child
        log.info("started local run %s (pid %d)", run_id, child.pid)

    def stop(self, run_id: str) -> None:
        record = self._settle(self._record(run_id))
        if record.status not in ACTIVE:
            raise LaunchError(f"run {run_id!r} is {record.status}, not running; only a running run can be stopped")
        pid = self._pid(record)
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(run_id, pid, STOP_GRACE_S):
                self._signal(pid, signal.SIGKILL)
                self._wait_gone(run_id, pid, STOP_GRACE_S)
        # The process was killed before it could write its end; the record says what happened.
        record = load_record(Path(record.run_dir))
        if record.status in ACTIVE:
            record.status, record.finished_at, record.pid = "stopped", utc_now(), None
            save_record(record)

    def log_tail(self, run_id: str, lines: int = 200) -> str:
        """The end of the run's full log, or of the command's output while the run has none (it failed early)."""
        run_dir = self._run_dir(run_id)
        path = next((p for p in (run_dir / LOG_FILE, run_dir / CONSOLE_FILE) if p.is_file()), None)
        if path is None:
            return ""
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 256 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def run_data(self, run: RunInfo) -> RunData:
        run_dir = self._run_dir(run.run_id)
        pipeline_root = run_dir / "pipeline_root"
        report = self._record(run.run_id).report
        return RunData(
            training=training_rows(run_dir / "train" / "metrics.jsonl", skip_bad=True),
            evaluations=evaluations_under(pipeline_root),
            checkpoints=[
                checkpoint
                for prefix in self._store_prefixes(run_dir)
                for checkpoint in store_checkpoints(prefix, run.config.store if run.config else RunConfig().store)
            ],
            report_html=report if report and Path(report).is_file() else None,
        )

    # --------------------------------------------------------------------------------------- schedules
    def list_schedules(self) -> list[Schedule]:
        return []

    def create_schedule(self, name: str, cron: str, cfg: RunConfig, provenance: Provenance) -> str:
        raise LaunchError("schedules need the KFP launcher (--launcher kfp); the local launcher has no scheduler")

    def set_schedule_enabled(self, schedule_id: str, enabled: bool) -> None:
        raise LaunchError(f"no schedule {schedule_id!r}: the local launcher has no schedules")

    def delete_schedule(self, schedule_id: str) -> None:
        raise LaunchError(f"no schedule {schedule_id!r}: the local launcher has no schedules")

    # ---------------------------------------------------------------------------------------- helpers
    def _run_dir(self, run_id: str) -> Path:
        try:
            check_run_id(run_id)
        except EmtuneError:
            raise RunNotFound(f"no run {run_id!r} under {self.runs_dir}") from None
        return self.runs_dir / run_id

    def _record(self, run_id: str) -> RunRecord:
        run_dir = self._run_dir(run_id)
        if not (run_dir / RECORD_FILE).is_file():
            raise RunNotFound(f"no run {run_id!r} under {self.runs_dir}")
        return load_record(run_dir)

    def _pid(self, record: RunRecord) -> int | None:
        if record.pid is not None:
            return record.pid
        with contextlib.suppress(OSError, ValueError):
            return int((Path(record.run_dir) / PID_FILE).read_text(encoding="utf-8"))
        return None

    def _alive(self, run_id: str, pid: int | None) -> bool:
        with self._lock:
            child = self._children.get(run_id)
        if child is not None:
            return child.poll() is None  # also reaps it, so a finished child is no zombie
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _settle(self, record: RunRecord) -> RunRecord:
        """A record still active whose process is gone died without writing its end: say so, once."""
        if record.status not in ACTIVE or self._alive(record.run_id, self._pid(record)):
            return record
        record = load_record(Path(record.run_dir))  # it may have finished between the two reads
        if record.status in ACTIVE:
            record.status, record.finished_at, record.pid = "failed", utc_now(), None
            record.error = record.error or f"the pipeline process exited without recording its end; see {CONSOLE_FILE}"
            save_record(record)
        return record

    def _wait_gone(self, run_id: str, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._alive(run_id, pid):
                return True
            time.sleep(0.2)
        return False

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            # Runs started here lead their own process group; a run started elsewhere gets the signal alone.
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    def _info(self, record: RunRecord) -> RunInfo:
        run_dir = Path(record.run_dir)
        cfg = None
        for name in (REQUEST_FILE, CONFIG_FILE):
            if (run_dir / name).is_file():
                try:
                    cfg = load_config(run_dir / name)
                except EmtuneError as exc:
                    log.warning("run %s: %s", record.run_id, exc)
                break
        return RunInfo(
            run_id=record.run_id,
            name=cfg.run.name if cfg else record.run_id,
            status=record.status,
            created_at=record.created_at,
            finished_at=record.finished_at,
            provenance=Provenance(record.trigger, record.requested_by, record.parent_run),
            config=cfg,
            pipeline_version=f"local (config {record.config_hash})",
            image=None,
            error=record.error,
        )

    @staticmethod
    def _store_prefixes(run_dir: Path) -> list[str]:
        """The store prefixes the run pushed to: named by its train task's evaluation pairs once it has
        finished, else the folders of the run's own file:// store."""
        prefixes: dict[str, None] = {}
        for output in sorted(run_dir.glob("pipeline_root/*/train/executor_output.json")):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                for pair in json.loads(output.read_text(encoding="utf-8"))["parameterValues"]["Output"]:
                    prefix, step = split_step_uri(str(pair["model"]))
                    if step is not None:
                        prefixes[prefix] = None
        if not prefixes and (run_dir / "store").is_dir():
            prefixes.update((path.as_uri(), None) for path in sorted((run_dir / "store").iterdir()) if path.is_dir())
        return list(prefixes)
