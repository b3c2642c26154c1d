"""`emtune report RUN_DIR...` and `emtune report logits`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from emtune.cli.app import ConfigOption, OverwriteOption, SetOption, app, build_config


class _BuildByDefault(TyperGroup):
    """`emtune report RUN_DIR...` means `emtune report build RUN_DIR...`; named sub-commands still work."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: typer vendors its own click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


report_app = typer.Typer(
    cls=_BuildByDefault, help="Reports: the accuracy table and plots, or the logit comparison.", no_args_is_help=True
)
app.add_typer(report_app, name="report")


@report_app.command("build")
def build(
    inputs: Annotated[list[Path], typer.Argument(help="Eval output folders (or run folders holding them).")],
    out: Annotated[Path | None, typer.Option(help="Report folder; default <first input>/report.")] = None,
    metrics: Annotated[
        list[Path] | None, typer.Option("--metrics", help="Trainer metrics.jsonl for the entropy plot (repeatable).")
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Benchmark × checkpoint table with the average, deltas vs step 0 and best step; plots; md + html."""
    from emtune.report.build import run

    folder = run(inputs, out or inputs[0] / "report", metrics_jsonl=metrics, overwrite=overwrite)
    typer.echo(f"report: {folder / 'report.html'}")
    typer.echo((folder / "report.md").read_text(encoding="utf-8").split("\n## ")[0])


@report_app.command("logits")
def logits(
    model: Annotated[list[str], typer.Option(help="Models to compare (repeatable).")],
    prompts: Annotated[Path, typer.Option(help="JSONL (problem/prompt/question) or text file, one per line.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("logits-report"),
    config: ConfigOption = None,
    sets: SetOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Histograms and mean/std/skew of each model's logits on the same prompts (the logit shift)."""
    cfg = build_config(config, sets)
    from emtune.report.logits import run

    folder = run(cfg, model, prompts, out, overwrite=overwrite)
    summary: dict[str, Any] = json.loads((folder / "logits.json").read_text(encoding="utf-8"))
    for label, stats in summary["models"].items():
        typer.echo(f"{label}: mean {stats['mean']:.4f} std {stats['std']:.4f} skew {stats['skew']:.4f}")
    typer.echo(f"plot: {folder / 'logits.png'}")
