"""The typer application and the options every config-driven command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emtune.config import RunConfig, load_config, parse_override

app = typer.Typer(
    name="emtune",
    help="Entropy-minimisation fine-tuning: prep → train → store → evaluate → report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Flags:
    """Options of the `emtune` command itself, read by the top-level error handler."""

    debug = False


flags = _Flags()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show the full traceback too.")] = False,
) -> None:
    flags.debug = debug


ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Run config (YAML).")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set train.learning_rate=1e-5 (repeatable)."),
]

OverwriteOption = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace an existing output folder, if emtune wrote it (other folders are never replaced)."
    ),
]


def build_config(config: Path | None, sets: list[str] | None, flags: dict[str, Any] | None = None) -> RunConfig:
    """Config file, then `--set` overrides, then the command's own flags (given ones only)."""
    overrides: dict[str, Any] = dict(parse_override(item) for item in sets or [])
    overrides.update({key: value for key, value in (flags or {}).items() if value is not None})
    return load_config(config, overrides)
