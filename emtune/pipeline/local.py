"""Run the pipeline on this machine with kfp.local (every component a subprocess of this Python), and keep a
record of each run so later tools (the dashboard) can list them.

A run lives in `<runs_root>/<run_id>/`: `request.yaml` (the config as requested), `config.yaml` (the same placed
on this machine: folders and store under the run), `run.json` (its record with provenance, rewritten as its
status changes), `pipeline_root/` (KFP artifacts: prompts, metrics, per-pair results, the report),
`store/` (the file:// checkpoint store, unless the config names one) and `train/` (the trainer's run folder).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emtune.config import RunConfig, dump_config
from emtune.errors import ConfigError
from emtune.fsutil import atomic_write_json, atomic_write_text

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
    return RunRecord(**json.loads((Path(run_dir) / RECORD_FILE).read_text(encoding="utf-8")))


def list_runs(runs_root: Path) -> list[RunRecord]:
    """Every recorded local run under `runs_root`, oldest first."""
    records = []
    for path in sorted(Path(runs_root).glob(f"*/{RECORD_FILE}")):
        records.append(load_record(path.parent))
    return sorted(records, key=lambda record: record.created_at)


def local_config(cfg: RunConfig, run_dir: Path) -> RunConfig:
    """`cfg` for this machine: folders under the run, a file:// store there unless one is set, no retries."""
    local = cfg.model_copy(deep=True)
    local.run.out_dir = run_dir / "train"
    # kfp.local honours retries with their back-off; here a failure repeats, so fail at once.
    local.pipeline.eval_retries = 0
    if not local.store.uri:
        local.store.uri = (run_dir / "store").resolve().as_uri()
    return local


def run_local(
    cfg: RunConfig,
    runs_root: Path | None = None,
    *,
    run_id: str | None = None,
    provenance: Provenance = Provenance(),
) -> RunRecord:
    """Run the whole pipeline here; returns the run's record (status succeeded, report set) or raises.

    `run_id` lets a launcher name the run (and its folder) before the run starts."""
    from kfp import local

    from emtune.pipeline.checks import check_pipeline_config
    from emtune.pipeline.params import param_values
    from emtune.workflows.emtune_pipeline import build_pipeline

    check_pipeline_config(cfg)
    if provenance.trigger not in TRIGGERS:
        raise ConfigError(f"trigger {provenance.trigger!r} is not one of {', '.join(TRIGGERS)}")
    run_id = run_id or new_run_id()
    run_dir = (Path(runs_root) if runs_root is not None else Path(cfg.run.out_dir)).resolve() / run_id
    run_cfg = local_config(cfg, run_dir)
    atomic_write_text(run_dir / REQUEST_FILE, dump_config(cfg))
    atomic_write_text(run_dir / CONFIG_FILE, dump_config(run_cfg))
    record = RunRecord(
        run_id=run_id,
        run_dir=str(run_dir),
        status="running",
        config=str(run_dir / CONFIG_FILE),
        config_hash=run_cfg.digest(),
        created_at=utc_now(),
        trigger=provenance.trigger,
        requested_by=provenance.requested_by,
        parent_run=provenance.parent_run,
        pid=os.getpid(),
    )
    save_record(record)
    log.info("local pipeline run %s in %s", run_id, run_dir)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "pipeline_root"))
    try:
        task: Any = build_pipeline(run_cfg, local=True)(**param_values(run_cfg))
        record.report = str(Path(task.outputs["Output"].path) / "report.html")
        record.status = "succeeded"
    except BaseException as exc:
        record.status = "failed"
        record.error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise
    finally:
        record.finished_at = utc_now()
        record.pid = None
        save_record(record)
    return record
