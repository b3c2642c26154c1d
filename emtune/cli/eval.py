"""`emtune eval`, `emtune grade` and `emtune bench eval`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from emtune.cli.app import ConfigOption, OverwriteOption, SetOption, app, build_config
from emtune.cli.bench import bench_app

_console = Console()


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


@app.command("eval")
def eval_command(
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Model folder, hub id, builtin:tiny, store step URI or run prefix (repeatable); default: model.path."
        ),
    ] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    benchmarks: Annotated[str | None, typer.Option(help="Comma-separated benchmarks (eval.benchmarks).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder; default <run.out_dir>/eval.")] = None,
    backend: Annotated[str | None, typer.Option(help="auto, vllm or hf (eval.backend).")] = None,
    n: Annotated[int | None, typer.Option(help="Samples per problem (eval.n).")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature, 0 greedy (eval.temperature).")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Longest completion (eval.max_new_tokens).")] = None,
    limit: Annotated[int | None, typer.Option(help="First N problems of each benchmark (eval.limit).")] = None,
    overwrite: OverwriteOption = False,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted eval in --out: its completed pairs are kept.")
    ] = False,
) -> None:
    """Generate and grade completions for every checkpoint × benchmark; write samples, metrics, results."""
    cfg = build_config(
        config,
        sets,
        {
            "eval.benchmarks": _split(benchmarks),
            "eval.backend": backend,
            "eval.n": n,
            "eval.temperature": temperature,
            "eval.max_new_tokens": max_new_tokens,
            "eval.limit": limit,
        },
    )
    from emtune.evaluate.runner import RESULTS_FILE, run

    folder = run(cfg, model or [cfg.model.path], out=out, overwrite=overwrite, resume=resume)
    results = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))["results"]
    table = Table(title=f"accuracy (%) — {folder}")
    for column in ("checkpoint", "step", "benchmark", "accuracy", "timeouts", "mean tokens", "tokens/s"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r["label"],
            str(r["step"]),
            r["benchmark"],
            f"{100 * r['accuracy']:.1f}",
            str(r["timeouts"]),
            f"{r['mean_tokens']:.1f}",
            f"{r['tokens_per_s']:.0f}",
        )
    _console.print(table)


@app.command("grade")
def grade_command(
    samples: Annotated[Path, typer.Argument(help="JSONL with 'completion' and 'gold' per line (or emtune samples).")],
    out: Annotated[Path | None, typer.Option(help="Write every line back, with 'extracted' and 'correct'.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="math, code or logic; default: the kind in metrics.json beside it, else math.")
    ] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Re-grade saved completions (math-verify, the code sandbox or the knight/knave reader); print the accuracy."""
    cfg = build_config(config, sets)
    from emtune.evaluate.regrade import regrade

    ev = cfg.eval
    summary = regrade(
        samples, out, timeout_s=ev.grading_timeout_s, workers=ev.grading_workers, kind=kind, sandbox=ev.sandbox
    )
    typer.echo(
        f"accuracy {100 * summary['accuracy']:.2f}% ({summary['correct']}/{summary['items']} correct, "
        f"{summary['timeouts']} timeouts)"
    )


@bench_app.command("eval")
def bench_eval_command(
    model: Annotated[str, typer.Option(help="Model to time.")] = "builtin:tiny",
    problems: Annotated[int, typer.Option(min=1, help="Problems generated per backend.")] = 32,
    new_tokens: Annotated[int, typer.Option(min=1, help="Tokens per completion (eval.max_new_tokens).")] = 64,
    batch_size: Annotated[int, typer.Option(min=2, help="Batch of the batched hf run.")] = 32,
    grading_items: Annotated[int, typer.Option(min=1, help="Completions graded per grading run.")] = 600,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Generated tokens/s per backend (vLLM when EMTUNE_VLLM_PYTHON is set) and graded items/s, with ratios."""
    cfg = build_config(config, sets, {"eval.max_new_tokens": new_tokens})
    from emtune.evaluate.bench import bench_eval

    results = bench_eval(cfg, model, problems, grading_items, batch_size)
    rates = {m.name: m.rate for m in results}
    table = Table(title=f"eval throughput: {model}, {problems} problems x {new_tokens} tokens")
    for column in ("measurement", "rate", "vs baseline"):
        table.add_column(column)
    for m in results:
        ratio = "baseline" if m.baseline == m.name else f"{m.rate / rates[m.baseline]:.2f}x {m.baseline}"
        table.add_row(m.name, f"{m.rate:.1f} {m.unit}", ratio)
    _console.print(table)
