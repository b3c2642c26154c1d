"""`emtune bench ...`: measured comparisons against a baseline run in the same process."""

from __future__ import annotations

import typer

from emtune.cli.app import ConfigOption, SetOption, app, build_config

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
            model=name,
            samples=samples,
            new_tokens=tokens,
            repeats=repeats,
            prompts=prompts,
            baseline_micro_batches=baseline_micro_batches,
            precision=precision,
        )
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


@bench_app.command("grade")
def grade(
    items: int = typer.Option(400, min=1, help="Maths and logic samples graded per measurement."),
    programs: int = typer.Option(48, min=1, help="Code samples (HumanEval programs) run per measurement."),
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Samples graded per second for each kind; code: the sandbox against a bare subprocess (overhead/program)."""
    from rich.console import Console
    from rich.table import Table

    from emtune.evaluate.bench_grade import bench_grade

    cfg = build_config(config, sets)
    rates = bench_grade(cfg.eval, items, programs)
    by_name = {rate.name: rate.per_s for rate in rates}
    table = Table(title="grading throughput per kind")
    for column in ("kind", "measurement", "samples/s", "vs baseline", "ms per sample"):
        table.add_column(column)
    for rate in rates:
        ratio = "baseline" if rate.baseline == rate.name else f"{rate.per_s / by_name[rate.baseline]:.2f}x"
        table.add_row(rate.kind, rate.name, f"{rate.per_s:.1f}", ratio, f"{1000 / rate.per_s:.2f}")
    Console().print(table)
    bare, serial = by_name.get("bare subprocess, 1 at a time"), by_name.get("sandbox, 1 at a time")
    if bare and serial:
        Console().print(f"sandbox overhead per program: {1000 / serial - 1000 / bare:.1f} ms")


@bench_app.command("hash")
def hash_command(
    size_mb: int = typer.Option(256, min=1, help="Bytes to hash, in MB (a checkpoint's size, or part of it)."),
    files: int = typer.Option(4, min=1, help="Files they are split into (hashed in parallel, as a step's are)."),
    folder: str | None = typer.Option(None, help="Where to write them (the disk checkpoints go to); default: TMPDIR."),
) -> None:
    """sha256 MB/s of sealing and verifying a step against reading the same files (the baseline, same run)."""
    from pathlib import Path

    from emtune.store.hash_bench import run_bench

    row = run_bench(size_mb=size_mb, files=files, folder=Path(folder) if folder else None)
    typer.echo(
        f"{row.megabytes:.0f} MB in {row.files} files: read {row.read_mbps:.0f} MB/s, sha256 {row.sha256_mbps:.0f} "
        f"MB/s ({row.sha256_mbps / row.read_mbps:.2f}x of read), write {row.write_mbps:.0f} MB/s; a 15 GB step's "
        f"seal adds {15e3 / row.sha256_mbps:.0f} s in the sealer thread, off the training step"
    )
