"""`emtune bench ...`: measured comparisons against a baseline run in the same process."""

from __future__ import annotations

import typer

from emtune.cli.app import app

bench_app = typer.Typer(help="Benchmarks: each prints a ratio against a baseline measured in the same run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
