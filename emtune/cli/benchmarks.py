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
    for column in ("name", "kind", "count", "source", "description"):
        table.add_column(column)
    for item in list_benchmarks():
        table.add_row(item.name, item.kind, str(item.count or "-"), item.source, item.description)
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


def _people(text: str) -> list[int]:
    from emtune.data.knights import MAX_PEOPLE, MIN_PEOPLE
    from emtune.errors import ConfigError

    low, _, high = text.partition("-")
    try:
        sizes = list(range(int(low), int(high or low) + 1))
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < MIN_PEOPLE or sizes[-1] > MAX_PEOPLE:
        raise ConfigError(f"--people {text!r}: give N or N-M with {MIN_PEOPLE} <= N <= M <= {MAX_PEOPLE}")
    return sizes


@benchmarks_app.command("kk")
def kk_command(
    out: Annotated[Path, typer.Option(help="Folder for kk-<n>.jsonl and the kk-<n>.yaml specs.")],
    people: Annotated[str, typer.Option(help="Puzzle sizes: N or N-M, from 2 to 8 people.")] = "2-8",
    count: Annotated[int, typer.Option(min=1, help="Puzzles per size.")] = 100,
    seed: Annotated[int, typer.Option(min=0, help="Seed; the same seed writes the same files.")] = 0,
) -> None:
    """Generate Knights-and-Knaves benchmarks, each puzzle proved to have exactly one solution."""
    from emtune.data.kk_files import write_kk_benchmarks

    for spec_path in write_kk_benchmarks(out, _people(people), count, seed):
        _console.print(f"wrote {spec_path}", highlight=False)
    _console.print(f"use them with --benchmarks <path to a spec> or EMTUNE_BENCHMARK_SPECS={out}", highlight=False)


@benchmarks_app.command("add")
def add_command(
    harness: Annotated[Path, typer.Option(help="A Qwen2.5-Math-style data/ folder: <name>/test.jsonl per dataset.")],
    out: Annotated[Path, typer.Option(help="Folder to write one spec .yaml per dataset into.")],
) -> None:
    """Register every dataset of a harness data folder: write its spec, with the fields that dataset uses."""
    from emtune.data.harness import register_harness

    table = Table(title=f"datasets of {harness}")
    for column in ("name", "spec", "note"):
        table.add_column(column)
    for entry in register_harness(harness, out):
        table.add_row(entry.name, str(entry.spec or "-"), entry.reason or "")
    _console.print(table)
    _console.print(f"use them with EMTUNE_BENCHMARK_SPECS={out}", highlight=False)
