"""Where the dashboard's runs come from and go to: one interface, a local and a KFP implementation.

A launcher lists runs with their lifecycle state, starts one from a validated RunConfig, stops one, tails its
log, and reads what a run produced (training metrics per step, evaluation results, checkpoints, report).
Schedules (recurring retraining) exist where the backend has them (KFP recurring runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from emtune.config import RunConfig
from emtune.errors import EmtuneError
from emtune.runs.local import Provenance

ACTIVE = ("starting", "running")  # statuses that may still change
UNREADABLE = "unreadable"  # a run whose record cannot be read: listed with the reason as its error


class LaunchError(EmtuneError):
    """A run or schedule cannot be started or changed."""


class RunNotFound(LaunchError):
    """No run of that id."""


@dataclass
class RunInfo:
    run_id: str
    name: str
    status: str  # starting | running | succeeded | failed | stopped (| KFP's other states, lower-cased)
    created_at: str
    finished_at: str | None
    provenance: Provenance
    config: RunConfig | None  # the run's resolved config; None where it cannot be read
    pipeline_version: str | None = None
    image: str | None = None
    error: str | None = None
    url: str | None = None  # the run in the backend's own UI, where it has one
    tags: list[str] = field(default_factory=list)
    archived: bool = False

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass
class Checkpoint:
    step: int
    uri: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunData:
    """What a run has produced so far."""

    training: list[dict[str, Any]] = field(default_factory=list)  # the trainer's metrics, one row per step
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # metrics.json per (step, benchmark)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    report_html: str | None = None  # the report page, when the run has one


@dataclass
class Schedule:
    schedule_id: str
    name: str
    cron: str
    enabled: bool
    params: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None


class Launcher(Protocol):
    kind: str

    def ready(self) -> bool: ...

    def list_runs(self) -> list[RunInfo]: ...

    def get_run(self, run_id: str) -> RunInfo: ...

    def start(self, cfg: RunConfig, provenance: Provenance) -> str:
        """Start a run of `cfg`; returns its id."""
        ...

    def stop(self, run_id: str) -> None: ...

    def set_archived(self, run_id: str, archived: bool) -> None:
        """Hide a finished run from the default list (or show it again); nothing is deleted."""
        ...

    def set_tags(self, run_id: str, tags: list[str]) -> None: ...

    def delete(self, run_id: str, with_store: bool) -> None:
        """Delete a finished run; its checkpoints in the store only when `with_store`."""
        ...

    def log_tail(self, run_id: str, lines: int = 200) -> str: ...

    def checkpoint_files(self, run_id: str, step: int) -> dict[str, str]:
        """name -> local path of a step's files, where the dashboard can serve them (a file:// store); else {}."""
        ...

    def run_data(self, run: RunInfo) -> RunData: ...

    def list_schedules(self) -> list[Schedule]: ...

    def create_schedule(self, name: str, cron: str, cfg: RunConfig, provenance: Provenance) -> str: ...

    def set_schedule_enabled(self, schedule_id: str, enabled: bool) -> None: ...

    def delete_schedule(self, schedule_id: str) -> None: ...
