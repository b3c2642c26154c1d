"""`emtune bench ...`: measured comparisons against a baseline run in the same process."""

from __future__ import annotations

import typer

from emtune.cli.app import app

bench_app = typer.Typer(
    help="Benchmarks: each prints a ratio against a baseline measured in the same run.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")


@bench_app.command("em-step")
def em_step(
    model: str = typer.Option(
        "builtin:tiny", help="Model to time: builtin:tiny, a folder, or random:<shape> (e.g. random:qwen2.5-math-1.5b)."
    ),
    samples: int = typer.Option(64, min=2, help="Rollouts per step."),
    new_tokens: int = typer.Option(512, min=1, help="Most tokens sampled per rollout (the seed recipe: 512)."),
    repeats: int = typer.Option(3, min=1, help="Timed repetitions of each step, alternating; medians reported."),
    baseline_micro_batches: int | None = typer.Option(
        None, min=1, help="Time only this many seed-style micro-batches and scale (for large models on a GPU)."
    ),
    precision: str = typer.Option("fp32", help="fp32 or bf16 (bf16 for GPU runs of real shapes)."),
    short: bool = typer.Option(
        True, help="Also time short completions: builtin:tiny-math on its additions (about 8 tokens each)."
    ),
) -> None:
    """Seed-style EM step vs emtune's, same process, model, prompt, sample count, length limit and sampling."""
    from rich.console import Console
    from rich.table import Table

    from emtune.bench.em_step import run

    runs = [(model, "builtin:demo", new_tokens)] + ([("builtin:tiny-math", "builtin:demo-add", 16)] if short else [])
    console = Console()
    for name, prompts, tokens in runs:
        result = run(
            model=name, samples=samples, new_tokens=tokens, repeats=repeats, prompts=prompts,
            baseline_micro_batches=baseline_micro_batches, precision=precision,
        )  # fmt: skip
        table = Table(
            title=f"EM step: {name}, {samples} samples x up to {tokens} tokens, {result['device']}, "
            f"median of {repeats} interleaved"
        )
        for column in ("step", "seconds", "generated tokens", "tokens/s"):
            table.add_column(column)
        for timing in (result["baseline"], result["emtune"]):
            table.add_row(
                timing.name, f"{timing.seconds:.2f}", str(timing.generated_tokens), f"{timing.tokens_per_s:.0f}"
            )
        console.print(table)
        console.print(f"speedup (time): {result['speedup']:.1f}x   throughput ratio: {result['throughput_ratio']:.1f}x")
