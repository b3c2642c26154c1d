"""Run the pipeline on this machine with kfp.local (every component a subprocess of this Python), and keep a
record of each run so later tools (the dashboard) can list them.

A run lives in `<runs_root>/<run_id>/`: `config.yaml` (the run's config), `run.json` (its record, rewritten
as its status changes), `pipeline_root/` (KFP artifacts: prompts, metrics, per-pair results, the report),
`store/` (the file:// checkpoint store, unless the config names one) and `train/` (the trainer's run folder).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emtune.config import RunConfig, dump_config
from emtune.fsutil import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

RECORD_FILE = "run.json"
CONFIG_FILE = "config.yaml"


@dataclass
class RunRecord:
    run_id: str
    run_dir: str
    status: str  # running | succeeded | failed
    config: str  # path of the run's config.yaml
    config_hash: str
    created_at: str
    finished_at: str | None = None
    report: str | None = None  # the report's HTML page
    error: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def save_record(record: RunRecord) -> None:
    atomic_write_json(Path(record.run_dir) / RECORD_FILE, asdict(record))


def list_runs(runs_root: Path) -> list[RunRecord]:
    """Every recorded local run under `runs_root`, oldest first."""
    records = []
    for path in sorted(Path(runs_root).glob(f"*/{RECORD_FILE}")):
        records.append(RunRecord(**json.loads(path.read_text(encoding="utf-8"))))
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


def run_local(cfg: RunConfig, runs_root: Path | None = None) -> RunRecord:
    """Run the whole pipeline here; returns the run's record (status succeeded, report set) or raises."""
    from kfp import local

    from emtune.pipeline.checks import check_pipeline_config
    from emtune.pipeline.params import param_values
    from emtune.workflows.emtune_pipeline import build_pipeline

    check_pipeline_config(cfg)
    run_id = new_run_id()
    run_dir = (Path(runs_root) if runs_root is not None else Path(cfg.run.out_dir)).resolve() / run_id
    run_cfg = local_config(cfg, run_dir)
    atomic_write_text(run_dir / CONFIG_FILE, dump_config(run_cfg))
    record = RunRecord(
        run_id=run_id,
        run_dir=str(run_dir),
        status="running",
        config=str(run_dir / CONFIG_FILE),
        config_hash=run_cfg.digest(),
        created_at=_now(),
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
        record.finished_at = _now()
        save_record(record)
    return record
