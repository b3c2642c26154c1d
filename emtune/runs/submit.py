"""Submit the pipeline to Kubeflow Pipelines: upload it (or a new version), then create a run or a recurring run.

`build_request` does everything that needs no server (validation, compilation, run parameters), so
`--dry-run` shows exactly what `submit` would send; `submit` is a handful of thin `kfp.Client` calls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emtune.config import RunConfig
from emtune.deadlines import Bounded, call_with_deadline
from emtune.errors import ConfigError, PipelineError
from emtune.runs.local import Provenance, current_user

log = logging.getLogger(__name__)

UI_URL_ENV = "EMTUNE_KFP_UI_URL"  # where a browser opens KFP's UI; the API host is a different service
# Each KFP API call ends within this, however slowly the server answers (urllib3's timeouts are per read).
KFP_CALL_DEADLINE_S = 60.0
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
    use_version: str | None = None  # run this existing version of the pipeline instead of uploading one
    call_deadline_s: float = KFP_CALL_DEADLINE_S  # total seconds per KFP API call
    # What a dry run prints alongside the compiled pipeline.
    summary: dict[str, Any] = field(default_factory=dict)


# The descriptors KFP's scheduler (robfig/cron) accepts besides six fields.
CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# Names KFP's parser knows; croniter also takes L, W, # and H, which KFP's scheduler would reject.
_CRON_NAMES = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
_CRON_NAMES |= {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}


def cron_expression(text: str, option: str = "--recurring") -> str:
    """KFP's 6-field cron (seconds first) for `text`; a classic 5-field expression gets second 0.

    Checked here with croniter (seconds first) and KFP's own character set, so a bad schedule fails at submit,
    not later in the cluster's scheduler.
    """
    from croniter import croniter

    if text.strip() in CRON_DESCRIPTORS:
        return text.strip()
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    words = {word.lower() for word in re.findall(r"[A-Za-z]+", text)}
    if (
        len(fields) != 6
        or not words <= _CRON_NAMES
        or "#" in text
        or not croniter.is_valid(" ".join(fields), second_at_beginning=True)
    ):
        raise ConfigError(
            f"{option} {text!r} is not a valid cron schedule; expected 5 fields (minute hour day month weekday), "
            f"6 with seconds first (as KFP schedules), or one of {', '.join(CRON_DESCRIPTORS)}"
        )
    return " ".join(fields)


def build_request(
    cfg: RunConfig,
    package: Path,
    *,
    host: str | None,
    namespace: str | None = None,
    experiment: str = "emtune",
    run_name: str | None = None,
    recurring: str | None = None,
    provenance: Provenance | None = None,
    version_name: str | None = None,
    use_version: str | None = None,
) -> SubmitRequest:
    """Check the config, compile the pipeline into `package` and assemble the run request.

    Provenance defaults to this user starting it by hand (or by schedule, for a recurring run)."""
    from emtune.pipeline.checks import check_pipeline_config
    from emtune.pipeline.params import param_values, provenance_values
    from emtune.workflows.emtune_pipeline import PIPELINE_NAME, compile_pipeline

    check_pipeline_config(cfg, cluster=True)
    compile_pipeline(cfg, package)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    provenance = provenance or Provenance("schedule" if recurring else "manual", current_user())
    params = {
        **param_values(cfg),
        **provenance_values(provenance.trigger, provenance.requested_by, provenance.parent_run),
    }
    request = SubmitRequest(
        host=host or "",
        namespace=namespace,
        experiment=experiment,
        pipeline_name=PIPELINE_NAME,
        version_name=version_name or f"{PIPELINE_NAME}-{cfg.digest()}-{stamp}",
        run_name=run_name or f"{cfg.run.name}-{stamp}",
        params=params,
        package=package,
        recurring=cron_expression(recurring) if recurring else None,
        use_version=use_version,
    )
    request.summary = {
        "host": request.host or None,
        "namespace": namespace,
        "experiment": experiment,
        "pipeline": request.pipeline_name,
        "pipeline_version": use_version or request.version_name,
        "upload": use_version is None,
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


def _name_filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def find_pipeline_id(client: Any, name: str, namespace: str | None) -> str | None:
    """The id of the pipeline `name` in `namespace`: multi-user KFP keeps one per namespace (None: shared)."""
    # As kfp.Client.get_pipeline_id (which cannot name a namespace): the server's name filter decides.
    matches = client.list_pipelines(filter=_name_filter(name), namespace=namespace, page_size=2).pipelines or []
    if len(matches) > 1:
        raise PipelineError(f"KFP holds {len(matches)} pipelines named {name!r} in namespace {namespace!r}")
    return str(matches[0].pipeline_id) if matches else None


def find_version_id(client: Any, pipeline_id: str, name: str) -> str | None:
    """The id of the version `name` of the pipeline, if it was uploaded."""
    versions = client.list_pipeline_versions(pipeline_id, page_size=2, filter=_name_filter(name))
    matches = [v for v in versions.pipeline_versions or [] if v.display_name == name]
    return str(matches[0].pipeline_version_id) if matches else None


def _pipeline_version(client: Any, request: SubmitRequest) -> tuple[str, str]:
    """(pipeline id, version id): the existing version `use_version`, or a new version named `version_name`
    (the pipeline itself is uploaded, in the request's namespace, when it does not exist yet)."""
    pipeline_id = find_pipeline_id(client, request.pipeline_name, request.namespace)
    if request.use_version:
        version_id = find_version_id(client, pipeline_id, request.use_version) if pipeline_id else None
        if pipeline_id is None or version_id is None:
            raise PipelineError(
                f"pipeline {request.pipeline_name!r} has no version {request.use_version!r} in namespace "
                f"{request.namespace!r}; list them in the KFP UI or leave --use-version out to upload one"
            )
        return pipeline_id, version_id
    if pipeline_id is None:
        pipeline = client.upload_pipeline(
            str(request.package), pipeline_name=request.pipeline_name, namespace=request.namespace
        )
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
    host, seconds = request.host, request.call_deadline_s

    def too_slow(call: str) -> PipelineError:
        return PipelineError(f"KFP API at {host!r} did not answer {call} within {seconds:g} s (the per-call deadline)")

    with kfp_errors(host):
        if client is None:
            client = call_with_deadline(
                lambda: make_client(host, request.namespace), seconds, lambda: too_slow("Client")
            )
        return _submit(request, Bounded(client, seconds, too_slow))


def kfp_ui_url(host: str) -> str:
    """The base of links into KFP's UI: $EMTUNE_KFP_UI_URL (the chart's kfp.uiUrl), else the API host itself
    (a KFP reached through its UI's proxy, e.g. a port-forward of ml-pipeline-ui, serves both)."""
    return (os.environ.get(UI_URL_ENV) or host).rstrip("/")


def _submit(request: SubmitRequest, client: Any) -> str:
    assert request.host
    pipeline_id, version_id = _pipeline_version(client, request)
    experiment = client.create_experiment(request.experiment, namespace=request.namespace)
    base = kfp_ui_url(request.host)
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
