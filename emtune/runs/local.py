"""Run the pipeline on this machine with kfp.local (every component a subprocess of this Python), and keep a
record of each run so later tools (the dashboard) can list them.

A run lives in `<runs_root>/<run_id>/`: `request.yaml` (the config as requested), `config.yaml` (the same placed
on this machine: folders and store under the run), `run.json` (its record with provenance, rewritten as its
status changes), `pipeline.log` (kfp.local's output: every task's full log, without colour codes),
`pipeline_root/` (KFP artifacts: prompts, metrics, per-pair results, the report, the promotion), `store/` (the
file:// checkpoint store, unless the config names one) and `train/` (the trainer's run folder). Beside the runs,
`registry/mlflow.db` is the local MLflow registry the promote step uses unless the config names one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import io
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from emtune.config import RunConfig, dump_config
from emtune.errors import ConfigError, EmtuneError, PipelineError
from emtune.fsutil import atomic_write_json, atomic_write_text, exclusive_lock, is_locked
from emtune.interrupts import Stopped, deadline, forwarding

log = logging.getLogger(__name__)

RECORD_FILE = "run.json"
CONFIG_FILE = "config.yaml"
REQUEST_FILE = "request.yaml"
TRIGGERS = ("manual", "schedule", "dashboard", "api")
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Provenance:
    """How a run came to be: what started it, on whose behalf, and the run it was re-run from."""

    trigger: str = "manual"  # one of TRIGGERS
    requested_by: str | None = None
    parent_run: str | None = None


LOG_FILE = "pipeline.log"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# kfp.local's own lines around each task (kfp 2.17: task_dispatcher.py).
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
# The last line of a task's traceback when it raised one of emtune's exceptions: "emtune.errors.DataError: ...".
_RAISED = re.compile(r"^(emtune(?:\.\w+)*)\.(\w+): (.+)$")


@dataclass
class RunRecord:
    run_id: str
    run_dir: str
    status: str  # running | succeeded | failed | stopped
    config: str  # path of the run's config.yaml
    config_hash: str
    created_at: str
    finished_at: str | None = None
    report: str | None = None  # the report's HTML page
    error: str | None = None
    trigger: str = "manual"
    requested_by: str | None = None
    parent_run: str | None = None
    pid: int | None = None  # the process running the pipeline, while it runs
    log: str | None = None  # kfp.local's full output for the run

    @classmethod
    def begin(cls, run_dir: Path, status: str, config_hash: str, provenance: Provenance, **more: Any) -> RunRecord:
        """The first record of a run starting now in `run_dir` (the folder is named after the run)."""
        return cls(
            run_id=run_dir.name,
            run_dir=str(run_dir),
            status=status,
            config=str(run_dir / CONFIG_FILE),
            config_hash=config_hash,
            created_at=utc_now(),
            trigger=provenance.trigger,
            requested_by=provenance.requested_by,
            parent_run=provenance.parent_run,
            **more,
        )


@dataclass(frozen=True)
class TaskEvent:
    task: str
    status: str  # started | SUCCESS | FAILURE
    seconds: float | None = None  # how long the task ran, once it finished


class ExecutorLog(io.TextIOBase):
    """Where kfp.local's output goes instead of the terminal: each line into the run's log file without
    colour codes, task starts and ends to `on_task`, and (with `echo`) the stream as kfp prints it.

    It also keeps, per task, the user error (an EmtuneError) its traceback ended with and its last line, so a
    failed run can say in one line what went wrong instead of "Inner task failed".
    """

    def __init__(self, file: TextIO, on_task: Callable[[TaskEvent], None], echo: TextIO | None = None) -> None:
        super().__init__()
        self._file, self._on_task, self._echo = file, on_task, echo
        self._pending = ""
        # Start times per task name, oldest first: the iterations of a ParallelFor share one name and may overlap.
        self._started: dict[str, list[float]] = {}
        self._current: str | None = None
        self.last_line: dict[str, str] = {}
        self.user_error: dict[str, str] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def close_line(self) -> None:
        """Write out a last line that ended without a newline."""
        if self._pending:
            self._line(self._pending)
            self._pending = ""

    def flush(self) -> None:
        self._file.flush()
        if self._echo is not None:
            self._echo.flush()

    def _line(self, raw: str) -> None:
        line = _ANSI.sub("", raw)
        if self._echo is not None:  # colours only where they render
            self._echo.write((raw if self._echo.isatty() else line) + "\n")
        self._file.write(line + "\n")
        if started := _STARTED.search(line):
            self._current = started.group(1)
            self._started.setdefault(self._current, []).append(time.monotonic())
            self._on_task(TaskEvent(self._current, "started"))
        elif finished := _FINISHED.search(line):
            task, status = finished.groups()
            began = self._started.get(task) or [time.monotonic()]
            self._on_task(TaskEvent(task, status, time.monotonic() - began.pop(0)))
            if task == self._current:  # what follows (skipped tasks, clean-up) is kfp's, not the task's
                self._current = None
        elif self._current and line.strip():
            self.last_line[self._current] = line.strip()
            if (raised := _RAISED.match(line.strip())) and _is_user_error(*raised.groups()[:2]):
                self.user_error[self._current] = raised.group(3)

    def failure(self, exc: BaseException, log_path: Path) -> PipelineError | None:
        """The one-line error for a run kfp.local stopped with `exc`, from the failed task's own output."""
        failed = next((task for task in reversed(self.last_line) if task in str(exc)), self._current)
        if failed is None:
            return None
        if failed in self.user_error:
            return PipelineError(f"task {failed!r} failed: {self.user_error[failed]} (full log: {log_path})")
        last = self.last_line.get(failed, "no output")
        return PipelineError(f"task {failed!r} failed with {last!r}; its traceback is in {log_path}")


def _is_user_error(module: str, name: str) -> bool:
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return False
    return isinstance(found, type) and issubclass(found, EmtuneError)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def current_user() -> str | None:
    """This process's user name, where the system knows one (a container's UID may have none)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def check_run_id(run_id: str) -> str:
    """A run id names a folder under the runs root: letters, digits, '-', '_' and '.', not leading '.'."""
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f"run id {run_id!r} is not allowed; use letters, digits, '-', '_', '.' (up to 128)")
    return run_id


def save_record(record: RunRecord) -> None:
    atomic_write_json(Path(record.run_dir) / RECORD_FILE, asdict(record))


def load_record(run_dir: Path) -> RunRecord:
    path = Path(run_dir) / RECORD_FILE
    try:
        return RunRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise PipelineError(f"run record {str(path)!r} is not a valid {RECORD_FILE} ({type(exc).__name__})") from None


def settled(record: RunRecord) -> RunRecord:
    """The record as it stands: one saying "running" while no process holds the run folder's lock is a run whose
    process died without recording its end, and reads (and is rewritten) as failed."""
    if record.status != "running" or is_locked(Path(record.run_dir)):
        return record
    record.status, record.pid, record.finished_at = "failed", None, record.finished_at or utc_now()
    record.error = record.error or "the pipeline process is gone and did not record its end"
    save_record(record)
    return record


def list_runs(runs_root: Path) -> list[RunRecord]:
    """Every recorded local run under `runs_root`, oldest first; an unreadable record is skipped with a warning."""
    records = []
    for path in sorted(Path(runs_root).glob(f"*/{RECORD_FILE}")):
        try:
            records.append(load_record(path.parent))
        except PipelineError as err:
            log.warning("skipping %s", err)
    return sorted(records, key=lambda record: record.created_at)


def local_config(cfg: RunConfig, run_dir: Path) -> RunConfig:
    """`cfg` for this machine: folders under the run, a file:// store there unless one is set, no retries."""
    local = cfg.model_copy(deep=True)
    local.run.out_dir = run_dir / "train"
    # kfp.local honours retries with their back-off; here a failure repeats, so fail at once.
    local.pipeline.eval_retries = 0
    if not local.store.uri:
        local.store.uri = (run_dir / "store").resolve().as_uri()
    if local.promote.registry == "mlflow" and not local.promote.registry_uri:
        from emtune.promote.run import local_registry_uri

        local.promote.registry_uri = local_registry_uri(run_dir.parent)  # one registry for every run here
    return local


def run_local(
    cfg: RunConfig,
    runs_root: Path | None = None,
    *,
    run_id: str | None = None,
    provenance: Provenance = Provenance(),
    on_task: Callable[[TaskEvent], None] = lambda event: None,
    echo: TextIO | None = None,
) -> RunRecord:
    """Run the whole pipeline here; returns the run's record (status succeeded, report set) or raises.

    `run_id` lets a launcher name the run (and its folder) before the run starts. kfp.local's output (about 1,600
    lines for the tiny demo) goes to `<run>/pipeline.log`, and to `echo` when given; `on_task` hears each task's
    start and end. A failed task raises a PipelineError naming the task and, when it raised an EmtuneError, that
    error's message. The run folder is locked for the run's length, and a used `run_id` is refused.
    """
    from emtune.pipeline.checks import check_pipeline_config

    check_pipeline_config(cfg)
    if provenance.trigger not in TRIGGERS:
        raise ConfigError(f"trigger {provenance.trigger!r} is not one of {', '.join(TRIGGERS)}")
    run_id = run_id or new_run_id()
    run_dir = (Path(runs_root) if runs_root is not None else Path(cfg.run.out_dir)).resolve() / run_id
    with exclusive_lock(run_dir, "pipeline run folder"):  # one writer, until the record says how it ended
        _refuse_used_run_id(run_dir)
        return _run_locked(cfg, run_dir, provenance, on_task, echo)


def _refuse_used_run_id(run_dir: Path) -> None:
    """A run id names one run: only a folder a launcher prepared for this start (record "starting") may exist."""
    if not run_dir.exists():
        return
    status = "unreadable"
    with contextlib.suppress(PipelineError, OSError):
        status = load_record(run_dir).status if (run_dir / RECORD_FILE).is_file() else "no record"
    if status != "starting":
        raise ConfigError(
            f"run id {run_dir.name!r} is already used in {str(run_dir.parent)!r} (its run is {status}); choose "
            "another --run-id or leave it out"
        )


def _run_locked(
    cfg: RunConfig, run_dir: Path, provenance: Provenance, on_task: Callable[[TaskEvent], None], echo: TextIO | None
) -> RunRecord:
    from kfp import local

    from emtune.pipeline.params import param_values
    from emtune.workflows.emtune_pipeline import build_pipeline

    run_id = run_dir.name
    run_cfg = local_config(cfg, run_dir)
    atomic_write_text(run_dir / REQUEST_FILE, dump_config(cfg))
    atomic_write_text(run_dir / CONFIG_FILE, dump_config(run_cfg))
    record = RunRecord.begin(
        run_dir, "running", run_cfg.digest(), provenance, pid=os.getpid(), log=str(run_dir / LOG_FILE)
    )
    save_record(record)
    log.info("local pipeline run %s in %s", run_id, run_dir)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "pipeline_root"))
    with open(run_dir / LOG_FILE, "w", encoding="utf-8") as log_file:
        stream = ExecutorLog(log_file, on_task, echo)
        try:
            # kfp.local prints every task's output and its own log lines on sys.stdout, and logs more (skipped
            # tasks, clean-up) and warns (settings that do nothing locally) on sys.stderr: all of it is the log.
            with (
                contextlib.redirect_stdout(stream),
                contextlib.redirect_stderr(stream),
                forwarding(lambda: _signal_tasks(cfg.train.stop_grace_s)),
            ):
                task: Any = build_pipeline(run_cfg, local=True)(**param_values(run_cfg))
            record.report = str(Path(task.outputs["Output"].path) / "report.html")
            record.status = "succeeded"
        except Exception as exc:
            record.status = "failed"
            error = stream.failure(exc, run_dir / LOG_FILE)
            record.error = str(error) if error else _ANSI.sub("", (str(exc).strip().splitlines() or [""])[0])
            if error is None:
                raise
            raise error from None
        except Stopped as stop:
            record.status = "stopped"
            record.error = f"stopped by {stop.signal_name}"
            _stop_tasks(cfg.train.stop_grace_s)
            raise
        except BaseException:
            record.status = "failed"
            record.error = "interrupted"
            _stop_tasks(cfg.train.stop_grace_s)
            raise
        finally:
            stream.close_line()
            record.finished_at = utc_now()
            record.pid = None
            save_record(record)
    return record


def _signal_tasks(grace_s: float) -> None:
    """In the signal handler: SIGTERM to every task process now, SIGKILL to the survivors when the grace ends."""
    import psutil

    tasks = psutil.Process().children(recursive=True)
    for task in tasks:
        with contextlib.suppress(psutil.Error):
            task.terminate()
    timer = threading.Timer(grace_s, _kill_survivors, args=(tasks,))
    timer.daemon = True
    timer.start()


def _kill_survivors(tasks: list[Any]) -> None:
    import psutil

    for task in tasks:
        with contextlib.suppress(psutil.Error):
            if task.is_running():
                task.kill()


def _stop_tasks(grace_s: float) -> None:
    """Forward the stop to the task processes kfp.local started (this process's descendants): SIGTERM, then
    SIGKILL to those still running once `grace_s` after the stop signal has passed."""
    import psutil

    tasks = psutil.Process().children(recursive=True)
    for task in tasks:
        with contextlib.suppress(psutil.Error):
            task.terminate()
    _, alive = psutil.wait_procs(tasks, timeout=max(0.5, deadline(grace_s) - time.monotonic()))
    for task in alive:
        log.warning("task process %d did not stop within %g s of the stop signal; killing it", task.pid, grace_s)
        with contextlib.suppress(psutil.Error):
            task.kill()
