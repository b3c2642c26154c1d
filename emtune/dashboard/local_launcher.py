"""The local launcher: runs under a runs folder, each started as `emtune pipeline run --local` in a background
process of its own (its own process group, so stopping it stops its component subprocesses too).

The runs folder is the only state: each run's `run.json` (emtune.runs.local) says what it is, its
`pipeline.log` (written by the run) holds every task's output, `console.log` the command's own output (task lines,
errors before the pipeline starts) for runs started here, and `pipeline.pid` their process id, start time and
command line.

Nothing in a run folder is trusted (anyone who can write the folder, or a run's own code, may have written it):
file paths are derived from the folder, never read from `run.json`; symlinks are refused; a process is signalled
only when it is one this launcher started (its start time and command line still match what was recorded); a
folder whose record cannot be read is listed as one "unreadable" run with the reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import yaml

from emtune.config import RunConfig, dump_config, validate_config
from emtune.dashboard.forms import load_yaml
from emtune.dashboard.launcher import ACTIVE, UNREADABLE, LaunchError, RunData, RunInfo, RunNotFound, Schedule
from emtune.dashboard.rundata import evaluations_under, store_checkpoints
from emtune.errors import ConfigError, EmtuneError
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
    new_run_id,
    save_record,
    utc_now,
)
from emtune.store import split_step_uri

log = logging.getLogger(__name__)

CONSOLE_FILE = "console.log"
MARKS_FILE = "dashboard.json"  # the dashboard's own marks on a run: tags, archived (display only)
PID_FILE = "pipeline.pid"
STOP_GRACE_S = 15.0
MAX_RECORD_BYTES = 1024 * 1024
REPORT_GLOB = "pipeline_root/*/report/*/report.html"  # the report task's folder output (kfp.local's layout)


class UnreadableRun(EmtuneError):
    """A run folder whose record cannot be read."""


def safe_file(run_dir: Path, *parts: str) -> Path | None:
    """`run_dir/parts...` when it is a regular file reached through no symlink, else None."""
    path = run_dir
    for part in parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    return path if stat.S_ISREG(mode) else None


def read_record(run_dir: Path) -> RunRecord:
    """The run's record, with its id and folder derived from where it lies; UnreadableRun says why not."""
    if run_dir.is_symlink():
        raise UnreadableRun("the run folder is a symlink; the dashboard does not follow it")
    path = safe_file(run_dir, RECORD_FILE)
    if path is None:
        raise UnreadableRun(f"{RECORD_FILE} is missing, not a regular file, or a symlink")
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise UnreadableRun(f"{RECORD_FILE} is larger than {MAX_RECORD_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UnreadableRun(f"{RECORD_FILE} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UnreadableRun(f"{RECORD_FILE} holds a {type(data).__name__}, not an object")
    known: dict[str, Any] = {}
    for field in fields(RunRecord):
        value = data.get(field.name)
        if field.name == "pid":
            known["pid"] = value if isinstance(value, int) and not isinstance(value, bool) else None
        elif value is not None:
            known[field.name] = str(value)
    known.update(run_id=run_dir.name, run_dir=str(run_dir))
    for required in ("status", "created_at"):
        if not known.get(required):
            raise UnreadableRun(f"{RECORD_FILE} has no {required!r}")
    known.setdefault("config", str(run_dir / CONFIG_FILE))
    known.setdefault("config_hash", "")
    return RunRecord(**known)


def _proc_identity(pid: int) -> tuple[str, list[str]] | None:
    """(start time in clock ticks since boot, command line) of a live process, from /proc; None when gone."""
    try:
        fields_after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return None
    return fields_after_name[19], [part.decode(errors="replace") for part in cmdline if part]


class LocalLauncher:
    kind = "local"

    def __init__(self, runs_dir: Path, python: str = sys.executable) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.python = python
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # runs started by this process
        # Parsed configs by (path, mtime, size): validating a config costs milliseconds, and a list reads them all.
        self._configs: dict[tuple[str, int, int], RunConfig | None] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- runs
    def ready(self) -> bool:
        return self.runs_dir.is_dir() and os.access(self.runs_dir, os.R_OK | os.W_OK)

    def list_runs(self) -> list[RunInfo]:
        runs = []
        for entry in self._entries():
            try:
                runs.append(self._info(self._settle(read_record(entry))))
            except UnreadableRun as exc:
                runs.append(self._unreadable(entry, str(exc)))
        return sorted(runs, key=lambda run: run.created_at, reverse=True)

    def get_run(self, run_id: str) -> RunInfo:
        run_dir = self._run_dir(run_id)
        try:
            return self._info(self._settle(self._record(run_id)))
        except UnreadableRun as exc:
            return self._unreadable(run_dir, str(exc))

    def _entries(self) -> list[Path]:
        """Run folders: entries with a run id's shape (a symlink too, listed to say it is refused)."""
        entries = []
        with contextlib.suppress(OSError):
            for entry in self.runs_dir.iterdir():
                with contextlib.suppress(EmtuneError):
                    check_run_id(entry.name)
                    if entry.is_symlink() or (entry / RECORD_FILE).exists() or (entry / RECORD_FILE).is_symlink():
                        entries.append(entry)
        return entries

    def _unreadable(self, run_dir: Path, reason: str) -> RunInfo:
        return RunInfo(
            run_id=run_dir.name,
            name=run_dir.name,
            status=UNREADABLE,
            created_at="",
            finished_at=None,
            provenance=Provenance("unknown", None, None),
            config=None,
            error=reason,
        )

    def start(self, cfg: RunConfig, provenance: Provenance) -> str:
        cfg = cfg.model_copy(deep=True)
        cfg.store.uri = None  # the store is the launcher's: the run's own folder (emtune.runs.local)
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
        identity = _proc_identity(child.pid)
        start = identity[0] if identity else None
        atomic_write_text(run_dir / PID_FILE, json.dumps({"pid": child.pid, "start": start, "cmdline": command}))
        self._children[run_id] = child
        log.info("started local run %s (pid %d)", run_id, child.pid)

    def stop(self, run_id: str) -> None:
        record = self._settle(self._record(run_id))
        if record.status not in ACTIVE:
            raise LaunchError(f"run {run_id!r} is {record.status}, not running; only a running run can be stopped")
        pid = self._started_pid(run_id)
        if pid is None:
            raise LaunchError(
                f"run {run_id!r} was not started by a dashboard on this machine (or its process is gone); "
                "stop it where it runs"
            )
        self._signal(pid, signal.SIGTERM)
        if not self._wait_gone(run_id, pid, STOP_GRACE_S):
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(run_id, pid, STOP_GRACE_S)
        # The process was killed before it could write its end; the record says what happened.
        record = read_record(self._run_dir(run_id))
        if record.status in ACTIVE:
            record.status, record.finished_at, record.pid = "stopped", utc_now(), None
            save_record(record)

    def log_tail(self, run_id: str, lines: int = 200) -> str:
        """The end of the run's task-level output (what `emtune pipeline run --local` prints: a line per task and
        step), else of kfp.local's full log (a run started elsewhere)."""
        run_dir = self._run_dir(run_id)
        path = next((p for p in (safe_file(run_dir, CONSOLE_FILE), safe_file(run_dir, LOG_FILE)) if p), None)
        if path is None:
            return ""
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 256 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def run_data(self, run: RunInfo) -> RunData:
        run_dir = self._run_dir(run.run_id)
        if run.status == UNREADABLE or run_dir.is_symlink():
            return RunData()
        pipeline_root = run_dir / "pipeline_root"
        metrics = safe_file(run_dir, "train", "metrics.jsonl")
        store = RunConfig().store  # the run's own file:// store: nothing of the run's store settings is needed
        return RunData(
            training=training_rows(metrics, skip_bad=True) if metrics else [],
            evaluations=evaluations_under(pipeline_root) if not pipeline_root.is_symlink() else [],
            checkpoints=[
                checkpoint
                for prefix in self._store_prefixes(run_dir)
                for checkpoint in store_checkpoints(prefix, store)
            ],
            report_html=self._report(run_dir),
        )

    @staticmethod
    def _report(run_dir: Path) -> str | None:
        """The report task's page, found where kfp.local puts it under this run's folder (no symlink on the way)."""
        for path in sorted(run_dir.glob(REPORT_GLOB), reverse=True):
            relative = path.relative_to(run_dir).parts
            if safe_file(run_dir, *relative):
                return str(path)
        return None

    def checkpoint_files(self, run_id: str, step: int) -> dict[str, str]:
        """A step's files in the run's own store (regular files only, reached through no symlink)."""
        run_dir = self._run_dir(run_id)
        for prefix in self._store_prefixes(run_dir):
            folder = Path(url2pathname(urlsplit(f"{prefix}/step-{step}").path)) / self._upload_folder(prefix, step)
            relative = folder.relative_to(run_dir.resolve()).parts if folder.is_relative_to(run_dir.resolve()) else ()
            if relative and not folder.is_symlink() and folder.is_dir():
                files = {entry.name: safe_file(run_dir.resolve(), *relative, entry.name) for entry in folder.iterdir()}
                return {name: str(path) for name, path in sorted(files.items()) if path}
        return {}

    @staticmethod
    def _upload_folder(prefix: str, step: int) -> str:
        """Where the step's committed manifest says its files are (a validated `files-<digest>` name; "" for a
        store that keeps them directly in the step folder, or a step without a readable manifest)."""
        from emtune.config.store import StoreConfig
        from emtune.store import open_store

        try:
            return open_store(prefix, StoreConfig()).read_manifest(step).upload
        except (EmtuneError, OSError, ValueError) as exc:
            log.debug("no manifest for step %d under %s: %s", step, prefix, exc)
            return ""

    # ------------------------------------------------------------------------------------- housekeeping
    def set_archived(self, run_id: str, archived: bool) -> None:
        self._finished_only(run_id, "archived")
        self._save_marks(run_id, {**self._marks(self._run_dir(run_id)), "archived": archived})

    def set_tags(self, run_id: str, tags: list[str]) -> None:
        self._record(run_id)
        self._save_marks(run_id, {**self._marks(self._run_dir(run_id)), "tags": tags})

    def delete(self, run_id: str, with_store: bool) -> None:
        """Remove the run folder; without `with_store` its `store/` (the checkpoints) stays where it was, so the
        folder is no longer a run but keeps what was pushed."""
        self._finished_only(run_id, "deleted")
        run_dir = self._run_dir(run_id)
        for entry in list(run_dir.iterdir()):
            if entry.name == "store" and not with_store:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if with_store:
            run_dir.rmdir()
        log.info("deleted local run %s (%s)", run_id, "with its store" if with_store else "store kept")

    def _finished_only(self, run_id: str, what: str) -> None:
        record = self._settle(self._record(run_id))
        if record.status in ACTIVE:
            raise LaunchError(f"run {run_id!r} is {record.status}; stop it before it can be {what}")

    @staticmethod
    def _marks(run_dir: Path) -> dict[str, Any]:
        path = safe_file(run_dir, MARKS_FILE)
        try:
            marks = json.loads(path.read_text(encoding="utf-8")) if path else {}
        except (OSError, ValueError):
            return {}
        return marks if isinstance(marks, dict) else {}

    def _save_marks(self, run_id: str, marks: dict[str, Any]) -> None:
        atomic_write_text(self._run_dir(run_id) / MARKS_FILE, json.dumps(marks))

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
        if not run_dir.is_symlink() and not (run_dir / RECORD_FILE).exists():
            raise RunNotFound(f"no run {run_id!r} under {self.runs_dir}")
        return read_record(run_dir)

    def _started_pid(self, run_id: str) -> int | None:
        """The pid of this run's process when a launcher started it: the child of this process, or the process
        `pipeline.pid` names if its start time and command line still match (so a pid reused by another
        process, or a crafted file naming a foreign process, is never signalled)."""
        with self._lock:
            child = self._children.get(run_id)
        if child is not None:
            return child.pid if child.poll() is None else None
        path = safe_file(self._run_dir(run_id), PID_FILE)
        if path is None:
            return None
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
            pid, start, cmdline = int(recorded["pid"]), str(recorded["start"]), list(map(str, recorded["cmdline"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None
        expected = [self.python, "-m", "emtune", "pipeline", "run", "--local"]
        ours = cmdline[: len(expected)] == expected and _follows(cmdline, "--run-id", run_id)
        ours = ours and _follows(cmdline, "--runs-root", str(self.runs_dir))
        return pid if ours and _proc_identity(pid) == (start, cmdline) else None

    def _pid(self, record: RunRecord) -> int | None:
        """The run's process for liveness only (never for signals): the one a launcher started, else run.json's."""
        return self._started_pid(record.run_id) or record.pid

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
        record = read_record(Path(record.run_dir))  # it may have finished between the two reads
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
        marks = self._marks(run_dir)
        if not isinstance(marks.get("tags", []), list):
            marks["tags"] = []
        cfg = None
        for name in (REQUEST_FILE, CONFIG_FILE):
            path = safe_file(run_dir, name)
            if path is not None:
                cfg = self._config(path)
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
            tags=[str(tag) for tag in marks.get("tags", []) if isinstance(tag, str)][:20],
            archived=marks.get("archived") is True,
        )

    def _config(self, path: Path) -> RunConfig | None:
        try:
            info = path.stat()
        except OSError:
            return None
        key = (str(path), info.st_mtime_ns, info.st_size)
        with self._lock:
            if key in self._configs:
                return self._configs[key]
        cfg = None
        try:  # a run folder's YAML is not trusted: bounded, no aliases
            data = load_yaml(path.read_text(encoding="utf-8"), max_chars=MAX_RECORD_BYTES)
            if not isinstance(data, dict):
                raise ConfigError(f"holds a {type(data).__name__}, not a mapping of sections")
            cfg = validate_config(data)
        except (EmtuneError, OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
            log.warning("%s: %s", path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        with self._lock:
            if len(self._configs) > 10_000:
                self._configs.clear()
            self._configs[key] = cfg
        return cfg

    @staticmethod
    def _store_prefixes(run_dir: Path) -> list[str]:
        """The store prefixes the run pushed to: named by its train task's evaluation pairs once it has
        finished, else the folders of the run's own file:// store."""
        prefixes: dict[str, None] = {}
        for output in sorted(run_dir.glob("pipeline_root/*/train/executor_output.json")):
            if not safe_file(run_dir, *output.relative_to(run_dir).parts):
                continue
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
                for pair in json.loads(output.read_text(encoding="utf-8"))["parameterValues"]["Output"]:
                    prefix, step = split_step_uri(str(pair["model"]))
                    # Only the run's own store: a prefix named in a run folder's file is not trusted further.
                    if step is not None and _own_store(run_dir, prefix):
                        prefixes[prefix] = None
        store = run_dir / "store"
        if not prefixes and store.is_dir() and not store.is_symlink():
            prefixes.update(
                (path.as_uri(), None) for path in sorted(store.iterdir()) if path.is_dir() and not path.is_symlink()
            )
        return list(prefixes)


def _follows(command: list[str], flag: str, value: str) -> bool:
    return any(command[i] == flag and command[i + 1] == value for i in range(len(command) - 1))


def _own_store(run_dir: Path, prefix: str) -> bool:
    """`prefix` is a file:// URI inside the run's own `store/` folder."""
    store = (run_dir / "store").resolve().as_uri() + "/"
    return prefix.startswith(store) and ".." not in prefix
