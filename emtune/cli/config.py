"""`emtune config show|docs`: the resolved config, and the generated reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emtune.cli.app import ConfigOption, SetOption, app, build_config

config_app = typer.Typer(help="Inspect the run config.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show(config: ConfigOption = None, sets: SetOption = None) -> None:
    """Print the fully resolved, validated config as YAML."""
    from emtune.config import dump_config

    typer.echo(dump_config(build_config(config, sets)), nl=False)


@config_app.command("docs")
def docs(
    write: Annotated[
        Path | None,
        typer.Option(help="Embed the reference into this Markdown page (docs/configuration.md) instead of printing."),
    ] = None,
) -> None:
    """Print (or embed into a docs page) the reference of every config key."""
    from emtune.config.docs import embed, reference_markdown

    if write is None:
        typer.echo(reference_markdown())
    else:
        typer.echo(f"{write}: {'updated' if embed(write) else 'already up to date'}")
