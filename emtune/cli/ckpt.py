"""`emtune ckpt ...` (push, pull, ls, verify, latest, rm) and `emtune bench store`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from emtune.cli.app import ConfigOption, OverwriteOption, SetOption, app, build_config
from emtune.cli.bench import bench_app
from emtune.config.store import StoreConfig
from emtune.store import CheckpointStore, StepListing

ckpt_app = typer.Typer(
    help="Checkpoint stores: push, pull, list, verify and remove step folders.", no_args_is_help=True
)
app.add_typer(ckpt_app, name="ckpt")

_out = Console()
EndpointOption = Annotated[
    str | None, typer.Option("--endpoint-url", help="S3 endpoint (store.endpoint_url); default: boto3's environment.")
]
StepUri = Annotated[str, typer.Argument(help="A step URI (<store>/step-N) or a run URI (its newest complete step).")]
RunUri = Annotated[str, typer.Argument(help="A run URI: s3://bucket/prefix, file:///path or a plain path.")]


def _store_config(config: Path | None, sets: list[str] | None, endpoint_url: str | None) -> StoreConfig:
    return build_config(config, sets, {"store.endpoint_url": endpoint_url}).store


@ckpt_app.command("push")
def push(
    local_step_dir: Annotated[Path, typer.Argument(help="A step folder as the trainer writes it (step-N/).")],
    uri: Annotated[str, typer.Argument(help="Run URI (the step comes from the folder) or a .../step-N URI.")],
    step: Annotated[int | None, typer.Option(min=0, help="Step number, when the folder does not tell.")] = None,
    endpoint_url: EndpointOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Upload a step folder, then its manifest, then the run's `latest` pointer (resumable)."""
    from emtune.store.ops import push_folder

    result = push_folder(local_step_dir, uri, _store_config(config, sets, endpoint_url), step=step)
    state = "already complete" if result.already_complete else f"{result.uploaded} files sent"
    typer.echo(f"{result.uri}: {state}, {result.skipped} already present ({result.uploaded_bytes / 1e6:.1f} MB sent)")


@ckpt_app.command("pull")
def pull(
    uri: StepUri,
    local_dir: Annotated[Path, typer.Argument(help="Folder to create with the step's files.")],
    overwrite: OverwriteOption = False,
    endpoint_url: EndpointOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Download a complete step, checking every file's size and sha256 against its manifest."""
    from emtune.store.ops import pull_uri

    typer.echo(str(pull_uri(uri, local_dir, _store_config(config, sets, endpoint_url), overwrite=overwrite)))


@ckpt_app.command("ls")
def ls(uri: RunUri, endpoint_url: EndpointOption = None, config: ConfigOption = None, sets: SetOption = None) -> None:
    """List the steps in a store, complete (with a manifest) or not; resumable ones keep their resume state,
    model-only ones were pushed from a plain model folder."""
    from emtune.store.ops import list_uri

    store, listing = list_uri(uri, _store_config(config, sets, endpoint_url))
    latest = store.latest()
    # Plain lines, one per step, so scripts can read them.
    for entry in listing:
        state = "complete" if entry.complete else "incomplete"
        kind = _kind(store, entry)
        mark = "  latest" if entry.step == latest else ""
        typer.echo(
            f"{store.step_uri(entry.step)}  {state:<10}  {kind:<10}  {entry.files:>4} files  "
            f"{entry.bytes / 1e6:>10.1f} MB{mark}"
        )


def _kind(store: CheckpointStore, entry: StepListing) -> str:
    """resumable: its resume state is kept; model: a trainer's step without it; model-only: a plain model."""
    if not entry.complete:
        return ""
    if entry.state:
        return "resumable"
    return "model-only" if store.read_manifest(entry.step).kind == "model" else "model"


@ckpt_app.command("verify")
def verify(
    uri: StepUri, endpoint_url: EndpointOption = None, config: ConfigOption = None, sets: SetOption = None
) -> None:
    """Re-read every object of a step (or of every complete step of a run URI) against its manifest."""
    from emtune.store.ops import verify_uri

    for step_uri in verify_uri(uri, _store_config(config, sets, endpoint_url)):
        typer.echo(f"ok {step_uri}")


@ckpt_app.command("latest")
def latest(
    uri: RunUri, endpoint_url: EndpointOption = None, config: ConfigOption = None, sets: SetOption = None
) -> None:
    """Print the URI of the run's newest complete step."""
    from emtune.store.ops import latest_uri

    typer.echo(latest_uri(uri, _store_config(config, sets, endpoint_url)))


@ckpt_app.command("rm")
def rm(
    uri: Annotated[str, typer.Argument(help="A step URI to remove, or a run URI with --keep-last.")],
    keep_last: Annotated[
        int | None, typer.Option(min=1, help="On a run URI: keep the newest N complete steps, remove older ones.")
    ] = None,
    endpoint_url: EndpointOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Remove a step (manifest first, so it stops counting as complete at once) or apply retention."""
    from emtune.store.ops import remove_uri

    for removed in remove_uri(uri, _store_config(config, sets, endpoint_url), keep_last=keep_last):
        typer.echo(f"removed {removed}")


@bench_app.command("store")
def bench_store(
    size_mb: Annotated[int, typer.Option(min=1, help="Total size of the synthetic checkpoint.")] = 64,
    files: Annotated[int, typer.Option(min=1, help="Files in the checkpoint (one large, the rest small).")] = 8,
    servers: Annotated[list[str] | None, typer.Option("--server", help="moto and/or rclone (default: both).")] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Push and pull a synthetic checkpoint; MB/s against single-stream put_object/get_object, same server."""
    from emtune.store.bench import run_bench

    table = Table(
        "server",
        "MB",
        "put_object MB/s",
        "push MB/s",
        "push ×",
        "get_object MB/s",
        "pull MB/s",
        "pull ×",
        title="emtune bench store (× = store / single-stream baseline, same bytes, same server)",
    )
    for row in run_bench(_store_config(config, sets, None), size_mb=size_mb, files=files, servers=servers):
        table.add_row(
            row.server,
            f"{row.megabytes:.0f}",
            f"{row.put_mbps:.0f}",
            f"{row.push_mbps:.0f}",
            f"{row.push_mbps / row.put_mbps:.2f}",
            f"{row.get_mbps:.0f}",
            f"{row.pull_mbps:.0f}",
            f"{row.pull_mbps / row.get_mbps:.2f}",
        )
    _out.print(table)


@bench_app.command("ckpt-bytes")
def bench_ckpt_bytes(
    steps: Annotated[int, typer.Option(min=1, help="Steps of the tiny model to train, each saved.")] = 4,
    state_every: Annotated[int, typer.Option(min=0, help="store.state_every of the pushes (0: final step).")] = 0,
) -> None:
    """Bytes pushed and pulled per step for the tiny model: whole step folders (before) vs the store now."""
    from emtune.bench.ckpt_bytes import run_bench

    rows = run_bench(steps=steps, state_every=state_every)
    table = Table(
        "step",
        "step folder (pushed = pulled before)",
        "pushed now",
        "pulled now (evaluation)",
        title=f"emtune bench ckpt-bytes: tiny model, {steps} steps, store.state_every {state_every}",
    )
    for row in rows:
        table.add_row(str(row.step), f"{row.folder:,}", f"{row.pushed:,}", f"{row.pulled:,}")
    before = sum(row.folder for row in rows)
    pushed, pulled = sum(row.pushed for row in rows), sum(row.pulled for row in rows)
    table.add_row("all", f"{before:,}", f"{pushed:,}", f"{pulled:,}", end_section=True)
    _out.print(table)
    _out.print(f"pushed: {before / pushed:.2f}x fewer bytes   pulled per evaluated step: {before / pulled:.2f}x fewer")
