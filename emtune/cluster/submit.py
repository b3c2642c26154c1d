"""Submit the pipeline to Kubeflow Pipelines: upload it (or a new version), then create a run or a recurring run.

`build_request` does everything that needs no server (validation, compilation, run parameters), so
`--dry-run` shows exactly what `submit` would send; `submit` is a handful of thin `kfp.Client` calls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emtune.config import RunConfig
from emtune.errors import ConfigError, PipelineError

log = logging.getLogger(__name__)

TOKEN_ENV = "EMTUNE_KFP_TOKEN"  # a bearer token; else the in-cluster KFP service-account token, else none
SA_TOKEN_PATH = Path("/var/run/secrets/kubeflow/pipelines/token")


@dataclass
class SubmitRequest:
    host: str
    namespace: str | None
    experiment: str
    pipeline_name: str
    version_name: str
    run_name: str
    params: dict[str, Any]
    package: Path  # the compiled pipeline YAML
    recurring: str | None = None  # a 6-field cron expression (seconds first), as KFP schedules
    # What a dry run prints alongside the compiled pipeline.
    summary: dict[str, Any] = field(default_factory=dict)


def cron_expression(text: str) -> str:
    """KFP wants 6 fields (seconds first); a classic 5-field expression gets second 0."""
    fields = text.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise ConfigError(f"--recurring {text!r} is not a cron expression; expected 5 fields (or 6, seconds first)")


def build_request(
    cfg: RunConfig,
    package: Path,
    *,
    host: str | None,
    namespace: str | None = None,
    experiment: str = "emtune",
    run_name: str | None = None,
    recurring: str | None = None,
) -> SubmitRequest:
    """Check the config, compile the pipeline into `package` and assemble the run request."""
    from emtune.pipeline.checks import check_pipeline_config
    from emtune.pipeline.params import param_values
    from emtune.workflows.emtune_pipeline import PIPELINE_NAME, compile_pipeline

    check_pipeline_config(cfg, cluster=True)
    compile_pipeline(cfg, package)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    params = param_values(cfg)
    request = SubmitRequest(
        host=host or "",
        namespace=namespace,
        experiment=experiment,
        pipeline_name=PIPELINE_NAME,
        version_name=f"{PIPELINE_NAME}-{cfg.digest()}-{stamp}",
        run_name=run_name or f"{cfg.run.name}-{stamp}",
        params=params,
        package=package,
        recurring=cron_expression(recurring) if recurring else None,
    )
    request.summary = {
        "host": request.host or None,
        "namespace": namespace,
        "experiment": experiment,
        "pipeline": request.pipeline_name,
        "pipeline_version": request.version_name,
        "run_name": request.run_name,
        "recurring": {"cron": request.recurring, "max_concurrency": 1, "no_catchup": True} if recurring else None,
        "parameters": params,
    }
    return request


@contextlib.contextmanager
def kfp_errors(host: str) -> Iterator[None]:
    """The KFP client's connection failures and API refusals as one line naming the host (kfp raises urllib3's
    and kfp_server_api's exceptions, with the cause several layers down)."""
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except HTTPError as exc:  # connection refused, DNS, timeouts (MaxRetryError wraps the first of them)
        reason = str(getattr(exc, "reason", None) or exc).split(": ")[-1].rstrip("')\"")
        raise PipelineError(f"KFP API at {host!r} is unreachable ({reason}); check --host and the server") from None
    except ApiException as exc:
        raise PipelineError(f"KFP API at {host!r} refused the request: HTTP {exc.status} {exc.reason}") from None


def make_client(host: str, namespace: str | None) -> Any:
    """A kfp.Client authenticated by $EMTUNE_KFP_TOKEN, else the in-cluster service-account token."""
    import kfp

    token = os.environ.get(TOKEN_ENV)
    credentials = None
    if not token and SA_TOKEN_PATH.is_file():
        from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

        credentials = ServiceAccountTokenVolumeCredentials(str(SA_TOKEN_PATH))
    with warnings.catch_warnings():
        # "This client only works with KFP v2.0.0-beta.2 and later": emtune's pipelines need 2.x anyway.
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(host=host, namespace=namespace or "kubeflow", existing_token=token, credentials=credentials)


def _pipeline_version(client: Any, request: SubmitRequest) -> tuple[str, str]:
    """Upload the pipeline, or a new version of it when one of that name exists; (pipeline id, version id)."""
    pipeline_id = client.get_pipeline_id(request.pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(request.package), pipeline_name=request.pipeline_name)
        pipeline_id = pipeline.pipeline_id
        versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
        return pipeline_id, versions.pipeline_versions[0].pipeline_version_id
    version = client.upload_pipeline_version(
        str(request.package), pipeline_version_name=request.version_name, pipeline_id=pipeline_id
    )
    return pipeline_id, version.pipeline_version_id


def submit(request: SubmitRequest, client: Any = None) -> str:
    """Send the request; returns the URL of the run (or recurring run) in the KFP UI."""
    if not request.host:
        raise ConfigError("no KFP host: pass --host URL (e.g. http://ml-pipeline-ui.kubeflow:80)")
    with kfp_errors(request.host):
        return _submit(request, client or make_client(request.host, request.namespace))


def _submit(request: SubmitRequest, client: Any) -> str:
    assert request.host
    pipeline_id, version_id = _pipeline_version(client, request)
    experiment = client.create_experiment(request.experiment, namespace=request.namespace)
    base = request.host.rstrip("/")
    if request.recurring:
        recurring = client.create_recurring_run(
            experiment_id=experiment.experiment_id,
            job_name=request.run_name,
            cron_expression=request.recurring,
            max_concurrency=1,
            no_catchup=True,
            params=request.params,
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        return f"{base}/#/recurringrun/details/{recurring.recurring_run_id}"
    run = client.run_pipeline(
        experiment_id=experiment.experiment_id,
        job_name=request.run_name,
        params=request.params,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    return f"{base}/#/runs/details/{run.run_id}"
