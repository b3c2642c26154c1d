"""`emtune benchmarks list|show`: the benchmark registry on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from emtune.cli.app import ConfigOption, SetOption, app, build_config

benchmarks_app = typer.Typer(help="Built-in and custom benchmarks: list them, preview items.", no_args_is_help=True)
app.add_typer(benchmarks_app, name="benchmarks")

_console = Console()

SpecOption = Annotated[
    list[Path] | None, typer.Option("--spec", help="Register a custom benchmark spec (YAML) first (repeatable).")
]


def _register(specs: list[Path] | None) -> None:
    from emtune.data.benchmarks import register_benchmark_spec

    for path in specs or []:
        register_benchmark_spec(path)


@benchmarks_app.command("list")
def list_command(spec: SpecOption = None) -> None:
    """Name, expected count and default source of every known benchmark."""
    from emtune.data.benchmarks import list_benchmarks

    _register(spec)
    table = Table(title="benchmarks")
    for column in ("name", "count", "source", "description"):
        table.add_column(column)
    for item in list_benchmarks():
        table.add_row(item.name, str(item.count or "-"), item.source, item.description)
    _console.print(table)


@benchmarks_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Benchmark name, or the path of a spec .yaml.")],
    n: Annotated[int, typer.Option("-n", min=1, help="Items to preview.")] = 3,
    source: Annotated[
        str | None, typer.Option(help="Read from here instead: file, folder, s3:// prefix or hf://... source.")
    ] = None,
    check_count: Annotated[bool, typer.Option(help="Fail when the item count differs from the spec's.")] = True,
    spec: SpecOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Load a benchmark (checking its count) and preview its first items with their gold answers."""
    from emtune.data.benchmarks import load_benchmark

    cfg = build_config(config, sets)  # eval.sources overrides and the S3 settings of store.*
    _register(spec)
    benchmark = load_benchmark(name, source or cfg.eval.sources.get(name), check_count=check_count, store=cfg.store)
    _console.print(
        f"[bold]{benchmark.name}[/bold]: {len(benchmark.items)} items from {benchmark.source}", highlight=False
    )
    for item in benchmark.items[:n]:
        _console.rule(f"id {item.id}", style="dim")
        _console.print(item.question, markup=False, highlight=False)
        _console.print(Text.assemble(("gold: ", "green"), item.gold))
