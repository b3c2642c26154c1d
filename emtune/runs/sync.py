"""`emtune pipeline sync`: register the pipeline with Kubeflow Pipelines and keep its schedules, idempotently.

Run after every `helm install`/`upgrade` (the chart's hook) or by hand. It uploads the pipeline version named
from emtune's version and the compiled spec's hash (nothing when that version exists), ensures the experiment,
and reconciles the recurring runs listed in a schedules file with the ones it created before: it creates the
missing ones, pauses or resumes to match `enabled`, replaces the changed ones (KFP has no update: disable, delete,
create) and deletes the ones no longer listed. Recurring runs it did not create are never touched; its own carry
a mark and a fingerprint of what they run in their description.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emtune import __version__
from emtune.config import RunConfig, load_config
from emtune.errors import ConfigError, PipelineError
from emtune.runs.submit import cron_expression, find_pipeline_id, find_version_id

log = logging.getLogger(__name__)

MANAGED_MARK = "managed by emtune pipeline sync"
PAGE_SIZE = 100
HEALTHZ_PATH = "/apis/v2beta1/healthz"
# Seconds between tries while KFP comes up (a new cluster, an upgrade of KFP beside this release): doubling.
FIRST_BACKOFF_S, MAX_BACKOFF_S = 2.0, 30.0


def wait_for_kfp(
    host: str,
    *,
    deadline_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once KFP's API server answers at `host`; PipelineError (one line) when it has not within deadline_s.

    Any HTTP answer below 500 counts: a 401/403 comes from a server that is up (the calls that follow
    authenticate). Connection errors and 5xx (a gateway with KFP not ready behind it) are retried."""
    import requests

    started, backoff, last = clock(), FIRST_BACKOFF_S, ""
    url = host.rstrip("/") + HEALTHZ_PATH
    while True:
        try:
            status = requests.get(url, timeout=min(10.0, max(deadline_s, 1.0))).status_code
            if status < 500:
                return
            last = f"HTTP {status}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        left = deadline_s - (clock() - started)
        if left <= 0:
            raise PipelineError(f"KFP at {host!r} did not answer within {deadline_s:g} s (last: {last})")
        if backoff == FIRST_BACKOFF_S:
            log.info("waiting up to %g s for KFP at %s (%s)", deadline_s, host, last)
        sleep(min(backoff, left))
        backoff = min(backoff * 2, MAX_BACKOFF_S)


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Recurring run name, unique in the file.")
    cron: str = Field(description="Cron expression: 5 fields, or 6 with seconds first (KFP's format).")
    enabled: bool = Field(True, description="False: the recurring run exists but is paused.")
    set: dict[str, Any] = Field(default_factory=dict, description="Config keys and values of its runs.")

    @field_validator("cron")
    @classmethod
    def _kfp_cron(cls, value: str) -> str:
        try:
            return cron_expression(value, option="cron")
        except ConfigError as exc:  # pydantic reports ValueErrors with the entry's location
            raise ValueError(str(exc)) from None


class ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_account: str | None = Field(None, description="Kubernetes service account the scheduled runs use.")
    schedules: list[Schedule] = Field(default_factory=list)

    @field_validator("schedules")
    @classmethod
    def _unique_names(cls, value: list[Schedule]) -> list[Schedule]:
        names = [s.name for s in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"schedule names must be unique; repeated: {duplicates}")
        return value


def load_schedules(data: Any) -> ScheduleFile:
    """The schedules file's content, validated; a problem is one ConfigError line naming the entry."""
    try:
        return ScheduleFile.model_validate(data if data is not None else {})
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "schedules file"
        raise ConfigError(f"schedules file: {where}: {problem['msg']} (got {problem.get('input')!r})") from None


def read_schedules(path: Path) -> ScheduleFile:
    try:
        return load_schedules(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"schedules file {str(path)!r} cannot be read: {exc}".splitlines()[0]) from None


def version_name(pipeline_name: str, package: Path) -> str:
    """The pipeline version's name: emtune's version and the compiled spec's hash (same spec, same name)."""
    digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:12]
    return f"{pipeline_name}-v{__version__}-{digest}"


@dataclass
class DesiredRun:
    schedule: Schedule
    params: dict[str, Any]
    service_account: str | None

    def description(self, pipeline_name: str, version_id: str) -> str:
        """The mark of a sync-created run and a fingerprint of everything fixed when it was created."""
        identity = {
            "cron": self.schedule.cron,
            "params": self.params,
            "version_id": version_id,
            "service_account": self.service_account,
        }
        fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return f"{MANAGED_MARK} (pipeline {pipeline_name}); fingerprint={fingerprint}"


def desired_runs(config: Path | None, schedules: ScheduleFile) -> list[DesiredRun]:
    """Each schedule's run parameters (its `set` over the config); a bad key fails here, before any request."""
    from emtune.pipeline.checks import check_pipeline_config
    from emtune.pipeline.params import COMPILE_TIME_SECTIONS, param_values

    runs = []
    for schedule in schedules.schedules:
        fixed = sorted(key for key in schedule.set if key.split(".")[0] in COMPILE_TIME_SECTIONS)
        if fixed:
            raise ConfigError(
                f"schedule {schedule.name!r} sets {fixed}: these shape the compiled pipeline, so every schedule "
                "shares them; set them in the config (the chart's registration.pipeline) instead"
            )
        try:
            cfg: RunConfig = load_config(config, schedule.set)
        except ConfigError as exc:
            raise ConfigError(f"schedule {schedule.name!r}: {exc}") from None
        check_pipeline_config(cfg, cluster=True)
        runs.append(DesiredRun(schedule, param_values(cfg), schedules.service_account))
    return runs


@dataclass
class SyncResult:
    pipeline_id: str
    version_id: str
    version_name: str
    uploaded: bool
    experiment_id: str
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"pipeline version {self.version_name}: {'uploaded' if self.uploaded else 'exists, not uploaded'}",
            f"experiment id {self.experiment_id}",
        ]
        for what in ("created", "replaced", "paused", "resumed", "deleted", "unchanged"):
            names = getattr(self, what)
            if names:
                lines.append(f"schedules {what}: {', '.join(names)}")
        return "\n".join(lines)


def ensure_pipeline_version(
    client: Any, pipeline_name: str, name: str, package: Path, namespace: str | None = None
) -> tuple[str, str, bool]:
    """(pipeline id, version id, uploaded?) of the version `name`, uploading the pipeline/version if missing.

    In multi-user KFP the pipeline is the namespace's own: another profile's uploads never change it."""
    pipeline_id = find_pipeline_id(client, pipeline_name, namespace)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(package), pipeline_name=pipeline_name, namespace=namespace).pipeline_id
        log.info("created pipeline %s (%s)", pipeline_name, pipeline_id)
    version_id = find_version_id(client, pipeline_id, name)
    if version_id is not None:
        return pipeline_id, version_id, False
    version = client.upload_pipeline_version(str(package), pipeline_version_name=name, pipeline_id=pipeline_id)
    log.info("uploaded pipeline version %s", name)
    return pipeline_id, version.pipeline_version_id, True


def _recurring_runs(client: Any, experiment_id: str, namespace: str | None) -> Iterator[Any]:
    token, seen = "", set()
    while True:
        page = client.list_recurring_runs(
            page_token=token, page_size=PAGE_SIZE, experiment_id=experiment_id, namespace=namespace
        )
        yield from page.recurring_runs or []
        token = page.next_page_token or ""
        if not token or token in seen:  # a server handing back a token twice must not loop us forever
            return
        seen.add(token)


def _remove(client: Any, run: Any) -> None:
    if run.status == "ENABLED":
        client.disable_recurring_run(run.recurring_run_id)
    client.delete_recurring_run(run.recurring_run_id)


def reconcile_schedules(
    client: Any,
    result: SyncResult,
    desired: list[DesiredRun],
    *,
    pipeline_name: str,
    namespace: str | None,
) -> None:
    """Bring this pipeline's sync-created recurring runs in the experiment in line with `desired`."""
    mark = f"{MANAGED_MARK} (pipeline {pipeline_name});"
    owned: dict[str, list[Any]] = {}
    for run in _recurring_runs(client, result.experiment_id, namespace):
        if (run.description or "").startswith(mark):
            owned.setdefault(run.display_name, []).append(run)
    for want in desired:
        name = want.schedule.name
        current = owned.pop(name, [])
        description = want.description(pipeline_name, result.version_id)
        keep = next((r for r in current if r.description == description), None)
        for stale in current:
            if stale is not keep:
                _remove(client, stale)
        if keep is None:
            client.create_recurring_run(
                experiment_id=result.experiment_id,
                job_name=name,
                description=description,
                cron_expression=want.schedule.cron,
                max_concurrency=1,
                no_catchup=True,
                params=want.params,
                pipeline_id=result.pipeline_id,
                version_id=result.version_id,
                enabled=want.schedule.enabled,
                service_account=want.service_account,
            )
            (result.replaced if current else result.created).append(name)
        elif want.schedule.enabled and keep.status != "ENABLED":
            client.enable_recurring_run(keep.recurring_run_id)
            result.resumed.append(name)
        elif not want.schedule.enabled and keep.status == "ENABLED":
            client.disable_recurring_run(keep.recurring_run_id)
            result.paused.append(name)
        else:
            result.unchanged.append(name)
    for name, runs in owned.items():  # no longer listed
        for run in runs:
            _remove(client, run)
        result.deleted.append(name)


def sync(
    client: Any,
    package: Path,
    *,
    config: Path | None,
    pipeline_name: str,
    experiment: str,
    namespace: str | None = None,
    schedules: ScheduleFile | None = None,
) -> SyncResult:
    """Register `package` (the compiled pipeline) and, when a schedules file is given, reconcile its runs."""
    desired = desired_runs(config, schedules) if schedules is not None else []
    name = version_name(pipeline_name, package)
    pipeline_id, version_id, uploaded = ensure_pipeline_version(client, pipeline_name, name, package, namespace)
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id  # get or create
    result = SyncResult(pipeline_id, version_id, name, uploaded, experiment_id)
    if schedules is None:
        log.info("no schedules file: recurring runs left as they are")
        return result
    reconcile_schedules(client, result, desired, pipeline_name=pipeline_name, namespace=namespace)
    return result


def remove_schedules(client: Any, *, experiment: str, pipeline_name: str, namespace: str | None = None) -> list[str]:
    """Delete the recurring runs sync created for `pipeline_name` in `experiment` (a release's uninstall); their
    names. Recurring runs it did not create stay."""
    try:
        experiment_id = client.get_experiment(experiment_name=experiment, namespace=namespace).experiment_id
    except ValueError:  # kfp.Client: no experiment of that name, so no schedules in it
        return []
    result = SyncResult("", "", "", False, experiment_id)
    reconcile_schedules(client, result, [], pipeline_name=pipeline_name, namespace=namespace)
    return result.deleted


# The record of what the registration hook registered: the chart mounts it into the dashboard, so the
# dashboard starts runs from the version this release registered, never from whichever version is newest.
REGISTERED_ENV = "EMTUNE_KFP_REGISTERED"
REGISTERED_KEY = "version.json"


def registered_record(result: SyncResult, pipeline_name: str) -> str:
    return json.dumps(
        {"pipeline": pipeline_name, "pipeline_id": result.pipeline_id, "version_id": result.version_id,
         "version_name": result.version_name},
        sort_keys=True,
    )  # fmt: skip


def read_registered(path: Path | None) -> tuple[str, str] | None:
    """(pipeline id, version id) from the hook's record at `path`; None when there is none (not yet synced)."""
    if path is None or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return str(record["pipeline_id"]), str(record["version_id"])
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring the unreadable pipeline version record %s", path)
        return None
