"""The KFP launcher: runs and recurring runs of the uploaded pipeline version, through `kfp.Client`.

KFP is the source of truth for a run's lifecycle; what a run produced is read from the store where the
pipeline writes it (`<store.uri>/<KFP run id>`: each step's checkpoint and the training metrics its manifest
records). Runs are created from the pipeline *version* the chart's hook registered for this release (recorded in
its ConfigMap; the newest version only where none is recorded), so each can be cloned in the KFP UI; a changed
parameter the version does not declare is refused, and provenance travels as run parameters. The client
authenticates as `emtune pipeline submit` does; it never sets KFP's user-identity header.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emtune.config import RunConfig
from emtune.dashboard.launcher import LaunchError, RunData, RunInfo, RunNotFound, Schedule
from emtune.dashboard.rundata import store_checkpoints, store_report
from emtune.dashboard.settings import DashboardSettings
from emtune.errors import EmtuneError
from emtune.pipeline.params import PROVENANCE_PARAMS, config_from_params, param_values
from emtune.pipeline.steps import run_store_uri
from emtune.runs.local import Provenance
from emtune.runs.submit import kfp_ui_url
from emtune.runs.sync import REGISTERED_ENV, read_registered

log = logging.getLogger(__name__)

_STATES = {
    "PENDING": "starting",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "SKIPPED": "succeeded",
    "FAILED": "failed",
    "CANCELING": "running",
    "CANCELED": "stopped",
    "PAUSED": "running",
}


def registered_version() -> tuple[str, str] | None:
    """(pipeline id, version id) the registration hook recorded (the chart mounts it; see emtune.runs.sync)."""
    path = os.environ.get(REGISTERED_ENV)
    return read_registered(Path(path) if path else None)


def _declared_by(version: Any) -> set[str] | None:
    """The run parameters a pipeline version declares, if its spec says."""
    spec = version.pipeline_spec if isinstance(version.pipeline_spec, dict) else {}
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters")
    return set(declared) if declared else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="seconds") if isinstance(value, dt.datetime) else str(value)


def _images(spec: Any) -> str | None:
    """The container images a run's pipeline spec names (KFP includes the spec with some runs only)."""
    if not isinstance(spec, dict):
        return None
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    images = {executor.get("container", {}).get("image") for executor in executors.values()}
    return ", ".join(sorted(image for image in images if image)) or None


class KfpLauncher:
    kind = "kfp"

    def __init__(self, settings: DashboardSettings, client_factory: Callable[[], Any] | None = None) -> None:
        from emtune.runs.submit import make_client

        assert settings.kfp_host
        self.settings = settings
        self.host = settings.kfp_host.rstrip("/")
        self._client_factory = client_factory or (lambda: make_client(self.host, settings.kfp_namespace))
        self._client: Any = None
        self._experiment_id: str | None = None
        # Reports the pipeline put in the store, fetched to be served (a cache: /tmp is writable in the pod).
        self._report_cache = Path(tempfile.mkdtemp(prefix="emtune-dashboard-reports-"))

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def ready(self) -> bool:
        return True  # liveness of the KFP API is KFP's own probe; the dashboard still serves what it can

    # ------------------------------------------------------------------------------------------- runs
    def list_runs(self) -> list[RunInfo]:
        response = self.client.list_runs(
            experiment_id=self.experiment_id(),
            namespace=self.settings.kfp_namespace,
            page_size=100,
            sort_by="created_at desc",
        )
        return [self._info(run) for run in response.runs or []]

    def get_run(self, run_id: str) -> RunInfo:
        try:
            return self._info(self.client.get_run(run_id))
        except Exception as exc:  # the client raises ApiException for an unknown id
            raise RunNotFound(f"no KFP run {run_id!r}: {str(exc).splitlines()[0] if str(exc) else exc}") from None

    def start(self, cfg: RunConfig, provenance: Provenance) -> str:
        cfg = self._with_store(cfg)
        request = self._request(cfg, provenance)
        pipeline_id, version_id, declared = self._latest_version()
        run = self.client.run_pipeline(
            experiment_id=self.experiment_id(),
            job_name=request.run_name,
            params=self._declared(request.params, declared),
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        log.info("created KFP run %s from pipeline version %s", run.run_id, version_id)
        return str(run.run_id)

    def stop(self, run_id: str) -> None:
        run = self.get_run(run_id)
        if not run.active:
            raise LaunchError(f"run {run_id!r} is {run.status}, not running; only a running run can be stopped")
        self.client.terminate_run(run_id)

    def checkpoint_files(self, run_id: str, step: int) -> dict[str, str]:
        return {}  # an S3 store: its URI is the link (copy it); the dashboard serves no object-store files

    def set_archived(self, run_id: str, archived: bool) -> None:
        if archived:
            self.client.archive_run(run_id)
        else:
            self.client.unarchive_run(run_id)

    def set_tags(self, run_id: str, tags: list[str]) -> None:
        raise LaunchError("KFP runs have no tags; name the run or use its experiment instead")

    def delete(self, run_id: str, with_store: bool) -> None:
        if with_store:
            raise LaunchError(
                "the dashboard does not delete a KFP run's checkpoints; delete the run alone, then its "
                "<store>/<run id> prefix with your store's tools"
            )
        if self.get_run(run_id).active:
            raise LaunchError(f"run {run_id!r} is still running; stop it before deleting it")
        self.client.delete_run(run_id)

    def log_tail(self, run_id: str, lines: int = 200) -> str:
        return ""  # step logs live with the pods; the run's KFP page shows them

    def run_data(self, run: RunInfo) -> RunData:
        store_uri = self.settings.store_uri or (run.config.store.uri if run.config else None)
        if not store_uri or run.config is None:
            return RunData()
        cfg = run.config.model_copy(deep=True)
        cfg.store.uri = store_uri
        checkpoints = store_checkpoints(run_store_uri(cfg, run.run_id), cfg.store)
        training = [{"step": c.step, **c.metrics} for c in checkpoints if c.metrics]
        report = store_report(run_store_uri(cfg, run.run_id), cfg.store, self._report_cache / run.run_id)
        return RunData(
            training=training,
            checkpoints=checkpoints,
            evaluations=report.evaluations if report else [],
            report_html=report.html if report else None,
        )

    # --------------------------------------------------------------------------------------- schedules
    def list_schedules(self) -> list[Schedule]:
        response = self.client.list_recurring_runs(
            experiment_id=self.experiment_id(), namespace=self.settings.kfp_namespace, page_size=100
        )
        return [self._schedule(item) for item in response.recurring_runs or []]

    def create_schedule(self, name: str, cron: str, cfg: RunConfig, provenance: Provenance) -> str:
        cfg = self._with_store(cfg)
        request = self._request(cfg, Provenance("schedule", provenance.requested_by, None), recurring=cron)
        pipeline_id, version_id, declared = self._latest_version()
        recurring = self.client.create_recurring_run(
            experiment_id=self.experiment_id(),
            job_name=name,
            cron_expression=request.recurring,
            max_concurrency=1,
            no_catchup=True,
            params=self._declared(request.params, declared),
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        return str(recurring.recurring_run_id)

    def set_schedule_enabled(self, schedule_id: str, enabled: bool) -> None:
        if enabled:
            self.client.enable_recurring_run(schedule_id)
        else:
            self.client.disable_recurring_run(schedule_id)

    def delete_schedule(self, schedule_id: str) -> None:
        self.client.delete_recurring_run(schedule_id)

    # ---------------------------------------------------------------------------------------- helpers
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            experiment = self.client.create_experiment(self.settings.experiment, namespace=self.settings.kfp_namespace)
            self._experiment_id = str(experiment.experiment_id)
        return self._experiment_id

    def _request(self, cfg: RunConfig, provenance: Provenance, recurring: str | None = None) -> Any:
        """Check `cfg` for a cluster and turn it into run parameters, as `emtune pipeline submit` does."""
        from emtune.runs.submit import build_request

        with tempfile.TemporaryDirectory() as tmp:
            return build_request(
                cfg,
                Path(tmp) / "pipeline.yaml",
                host=self.host,
                namespace=self.settings.kfp_namespace,
                experiment=self.settings.experiment,
                recurring=recurring,
                provenance=provenance,
            )

    def _latest_version(self) -> tuple[str, str, set[str] | None]:
        """(pipeline id, version id, the parameters that version declares, if it says): the version the chart's
        hook registered for this release when it recorded one, else the newest."""
        registered = registered_version()
        if registered is not None:
            version = self.client.get_pipeline_version(*registered)
            return (*registered, _declared_by(version))
        name = self.settings.pipeline_name
        pipeline_id = self.client.get_pipeline_id(name)
        if pipeline_id is None:
            raise LaunchError(f"pipeline {name!r} is not uploaded to {self.host}; run `emtune pipeline sync` first")
        versions = self.client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
        if not versions.pipeline_versions:
            raise LaunchError(f"pipeline {name!r} has no version on {self.host}; run `emtune pipeline sync` first")
        version = versions.pipeline_versions[0]
        return str(pipeline_id), str(version.pipeline_version_id), _declared_by(version)

    def _with_store(self, cfg: RunConfig) -> RunConfig:
        """The store is the dashboard's (--store-uri), not the run config's."""
        if not self.settings.store_uri:
            return cfg
        cfg = cfg.model_copy(deep=True)
        cfg.store.uri = self.settings.store_uri
        return cfg

    @staticmethod
    def _declared(params: dict[str, Any], declared: set[str] | None) -> dict[str, Any]:
        """The parameters the version declares. One it does not declare is left out only while it holds the
        default (what that version runs with anyway); a changed one is refused, never silently dropped."""
        if declared is None:
            return params
        defaults = param_values(RunConfig())
        changed = [
            name
            for name in sorted(set(params) - declared)
            if name not in PROVENANCE_PARAMS and params[name] != defaults.get(name)
        ]
        if changed:
            raise LaunchError(
                f"the pipeline version on KFP does not declare {', '.join(changed)}, so it cannot honour the "
                "values set; run `emtune pipeline sync` to upload the current pipeline, or leave them at their defaults"
            )
        dropped = sorted(set(params) - declared)
        if dropped:
            log.warning(
                "the pipeline version does not declare %s (all at their defaults); not sent", ", ".join(dropped)
            )
        return {name: value for name, value in params.items() if name in declared}

    def _info(self, run: Any) -> RunInfo:
        params = dict(getattr(run.runtime_config, "parameters", None) or {})
        try:
            cfg: RunConfig | None = config_from_params(params)
        except EmtuneError as exc:
            log.warning("KFP run %s: %s", run.run_id, exc)
            cfg = None
        trigger = str(params.get("provenance_trigger") or ("schedule" if run.recurring_run_id else "manual"))
        reference = run.pipeline_version_reference
        error = getattr(run.error, "message", None) if run.error else None
        return RunInfo(
            run_id=str(run.run_id),
            name=str(run.display_name or run.run_id),
            status=_STATES.get(str(run.state or "").upper(), str(run.state or "unknown").lower()),
            created_at=_text(run.created_at) or "",
            finished_at=_text(run.finished_at) if run.finished_at and run.finished_at.year > 1970 else None,
            provenance=Provenance(
                trigger=trigger,
                requested_by=str(params.get("provenance_requested_by") or "") or None,
                parent_run=str(params.get("provenance_parent_run") or "") or None,
            ),
            config=cfg,
            pipeline_version=getattr(reference, "pipeline_version_id", None) or run.pipeline_version_id,
            image=_images(run.pipeline_spec),
            error=error,
            url=f"{kfp_ui_url(self.host)}/#/runs/details/{run.run_id}",
            archived=str(getattr(run, "storage_state", "") or "").upper() == "ARCHIVED",
        )

    @staticmethod
    def _schedule(item: Any) -> Schedule:
        cron = getattr(getattr(item.trigger, "cron_schedule", None), "cron", None) or ""
        return Schedule(
            schedule_id=str(item.recurring_run_id),
            name=str(item.display_name or item.recurring_run_id),
            cron=cron,
            enabled=str(item.status or "").upper() == "ENABLED",
            params=dict(getattr(item.runtime_config, "parameters", None) or {}),
            created_at=_text(item.created_at),
        )
