"""`emtune pipeline compile|run|submit|sync|runs`: the Kubeflow pipeline, locally or on a cluster."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml

from emtune.cli.app import ConfigOption, SetOption, app, build_config
from emtune.config import dump_config
from emtune.errors import ConfigError

pipeline_app = typer.Typer(help="The Kubeflow pipeline: compile it, run it here, or submit it.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("compile")
def compile_pipeline(
    config: ConfigOption = None,
    sets: SetOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the YAML here; default: stdout.")] = None,
) -> None:
    """Compile `emtune-pipeline` to KFP's YAML; parameters default to the config's values."""
    from emtune.workflows.emtune_pipeline import compile_pipeline as compile_to

    cfg = build_config(config, sets)
    if output is not None:
        compile_to(cfg, output)
        typer.echo(str(output))
        return
    with tempfile.TemporaryDirectory() as tmp:
        typer.echo(compile_to(cfg, Path(tmp) / "pipeline.yaml").read_text(encoding="utf-8"), nl=False)


@pipeline_app.command("run")
def run_pipeline(
    config: ConfigOption = None,
    sets: SetOption = None,
    local: Annotated[bool, typer.Option("--local", help="Run every step here with kfp.local (required).")] = False,
    runs_root: Annotated[
        Path | None, typer.Option(help="Folder of local runs; default: run.out_dir. Each run gets a subfolder.")
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Name of the run (its folder); default: time + suffix.")] = None,
    trigger: Annotated[str, typer.Option(help="What started the run: manual, schedule, dashboard or api.")] = "manual",
    requested_by: Annotated[str | None, typer.Option(help="Who asked for the run; default: this user.")] = None,
    parent_run: Annotated[str | None, typer.Option(help="The run this one re-runs (recorded as lineage).")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Stream kfp.local's full output (always kept in the run's pipeline.log).")
    ] = False,
) -> None:
    """Run the whole pipeline on this machine: one line per task, then the report and its headline numbers."""
    if not local:
        raise ConfigError("emtune pipeline run needs --local; to run on a cluster use `emtune pipeline submit`")
    from emtune.report.render import headline
    from emtune.runs.local import Provenance, TaskEvent, check_run_id, current_user, run_local

    provenance = Provenance(trigger=trigger, requested_by=requested_by or current_user(), parent_run=parent_run)
    cfg = build_config(config, sets)
    terminal = sys.stdout  # while the pipeline runs, sys.stdout is kfp.local's log

    def show(event: TaskEvent) -> None:
        if event.status == "started":
            typer.echo(f"  {event.task} started", file=terminal)
        else:
            outcome = {"SUCCESS": "succeeded", "FAILURE": "failed"}.get(event.status, event.status.lower())
            typer.echo(f"  {event.task} {outcome} in {_duration(event.seconds or 0.0)}", file=terminal)

    started = time.monotonic()
    record = run_local(
        cfg, runs_root, run_id=check_run_id(run_id) if run_id else None, provenance=provenance,
        on_task=show, echo=terminal if verbose else None,
    )  # fmt: skip
    typer.echo(f"run {record.run_id} succeeded in {_duration(time.monotonic() - started)}")
    typer.echo(f"report: {record.report}")
    results = json.loads((Path(record.report or "").parent / "results.json").read_text(encoding="utf-8"))
    for line in headline(results["results"]):
        typer.echo(f"  {line}")
    for line in _promotion_lines(Path(record.run_dir)):
        typer.echo(f"  {line}")
    typer.echo(f"full log: {record.log}")


def _promotion_lines(run_dir: Path) -> list[str]:
    """What the run's promote step decided and registered (kfp.local keeps its output file under pipeline_root)."""
    found = sorted(run_dir.glob("pipeline_root/*/promote/promotion")) + sorted(
        run_dir.glob("pipeline_root/*/*/promote/promotion")
    )
    if not found:
        return []
    return ["promotion:", *(f"  {line}" for line in json.loads(found[-1].read_text("utf-8"))["summary"])]


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds, 1), 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes else f"{rest:.1f} s"


@pipeline_app.command("runs")
def list_local_runs(
    runs_root: Annotated[Path, typer.Argument(help="Folder of local runs (run.out_dir of the runs).")] = Path(
        "runs/emtune"
    ),
) -> None:
    """List recorded local runs: id, status, start time, report."""
    from emtune.runs.local import list_runs, settled

    records = [settled(record) for record in list_runs(runs_root)]
    if not records:
        typer.echo(f"no recorded local runs under {runs_root}", err=True)
    for record in records:
        typer.echo(f"{record.run_id}  {record.status:<9}  {record.created_at}  {record.report or record.error or ''}")


@pipeline_app.command("submit")
def submit_pipeline(
    config: ConfigOption = None,
    sets: SetOption = None,
    host: Annotated[str | None, typer.Option(help="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubeflow namespace (profile) to run in.")] = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment the run belongs to.")] = "emtune",
    run_name: Annotated[str | None, typer.Option(help="Run name; default: run.name and a timestamp.")] = None,
    recurring: Annotated[
        str | None, typer.Option(help="Cron schedule: create a recurring run (max concurrency 1, no catch-up).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the pipeline and the request only.")] = False,
    version_name: Annotated[
        str | None, typer.Option(help="Name of the pipeline version to upload; default: config digest and time.")
    ] = None,
    use_version: Annotated[
        str | None, typer.Option(help="Run this existing version of the pipeline (by name) instead of uploading.")
    ] = None,
) -> None:
    """Upload the pipeline (or a new version) to Kubeflow Pipelines and start a run; prints its URL."""
    from emtune.runs.submit import build_request, submit

    cfg = build_config(config, sets)
    with tempfile.TemporaryDirectory() as tmp:
        request = build_request(
            cfg,
            Path(tmp) / "emtune_pipeline.yaml",
            host=host,
            namespace=namespace,
            experiment=experiment,
            run_name=run_name,
            recurring=recurring,
            version_name=version_name,
            use_version=use_version,
        )
        if dry_run:
            typer.echo(request.package.read_text(encoding="utf-8"), nl=False)
            typer.echo("---")
            typer.echo(yaml.safe_dump({"request": request.summary}, sort_keys=True), nl=False)
            return
        typer.echo(submit(request))


WaitOption = Annotated[
    float, typer.Option(min=0, help="Seconds to wait for KFP's API server to answer (it may still be starting).")
]


@pipeline_app.command("unschedule")
def unschedule_pipeline(
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://ml-pipeline.kubeflow:8888.")],
    namespace: Annotated[str | None, typer.Option(help="Kubeflow namespace (profile) of the experiment.")] = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment the schedules belong to.")] = "emtune",
    pipeline_name: Annotated[str, typer.Option(help="Name of the pipeline in KFP.")] = "emtune-pipeline",
    wait: WaitOption = 60.0,
) -> None:
    """Delete the recurring runs `sync` created for the pipeline (the chart's pre-delete hook)."""
    from emtune.runs.submit import make_client
    from emtune.runs.sync import remove_schedules, wait_for_kfp

    wait_for_kfp(host, deadline_s=wait)
    client = make_client(host, namespace)
    deleted = remove_schedules(client, experiment=experiment, pipeline_name=pipeline_name, namespace=namespace)
    typer.echo(f"schedules deleted: {', '.join(deleted)}" if deleted else "no schedules to delete")


@pipeline_app.command("sync")
def sync_pipeline(
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://ml-pipeline.kubeflow:8888.")],
    namespace: Annotated[str | None, typer.Option(help="Kubeflow namespace (profile) of the experiment.")] = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment the schedules belong to.")] = "emtune",
    pipeline_name: Annotated[str, typer.Option(help="Name of the pipeline in KFP.")] = "emtune-pipeline",
    schedules: Annotated[
        Path | None,
        typer.Option(help="YAML of recurring runs to keep (name, cron, enabled, set); unset: leave them alone."),
    ] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    wait: WaitOption = 120.0,
    record_configmap: Annotated[
        str | None,
        typer.Option(
            help="ConfigMap (in this pod's namespace) to record the registered version in, for the dashboard."
        ),
    ] = None,
) -> None:
    """Register the pipeline version (skipped when it exists), ensure the experiment, reconcile schedules."""
    from emtune.pipeline.checks import check_pipeline_config
    from emtune.runs.submit import make_client
    from emtune.runs.sync import read_schedules, sync, wait_for_kfp
    from emtune.workflows.emtune_pipeline import compile_pipeline as compile_to

    cfg = build_config(config, sets)
    check_pipeline_config(cfg, cluster=True)
    wanted = read_schedules(schedules) if schedules is not None else None
    wait_for_kfp(host, deadline_s=wait)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_to(cfg, Path(tmp) / "emtune_pipeline.yaml")
        base = Path(tmp) / "config.yaml"  # the schedules' runs start from this config
        base.write_text(dump_config(cfg), encoding="utf-8")
        result = sync(
            make_client(host, namespace),
            package,
            config=base,
            pipeline_name=pipeline_name,
            experiment=experiment,
            namespace=namespace,
            schedules=wanted,
        )
    if record_configmap:
        from emtune.cluster.k8s import current_namespace, record_in_config_map
        from emtune.runs.sync import REGISTERED_KEY, registered_record

        text = registered_record(result, pipeline_name)
        record_in_config_map(current_namespace(), record_configmap, REGISTERED_KEY, text)
    typer.echo(result.summary())
