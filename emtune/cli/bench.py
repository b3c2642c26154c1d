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
    new_tokens: int = typer.Option(512, min=1, help="Tokens sampled per rollout (the seed recipe: 512)."),
    repeats: int = typer.Option(1, min=1, help="Timed repetitions of each step; the best is reported."),
    baseline_micro_batches: int | None = typer.Option(
        None, min=1, help="Time only this many seed-style micro-batches and scale (for large models on a GPU)."
    ),
    precision: str = typer.Option("fp32", help="fp32 or bf16 (bf16 for GPU runs of real shapes)."),
) -> None:
    """Seed-style EM step vs emtune's, same process, same model, prompt, sample count and length."""
    from rich.console import Console
    from rich.table import Table

    from emtune.bench.em_step import run

    result = run(
        model=model, samples=samples, new_tokens=new_tokens, repeats=repeats,
        baseline_micro_batches=baseline_micro_batches, precision=precision,
    )  # fmt: skip
    table = Table(title=f"EM step: {result['model']}, {samples} samples x {new_tokens} tokens, {result['device']}")
    for column in ("step", "seconds", "generated tokens", "tokens/s"):
        table.add_column(column)
    for timing in (result["baseline"], result["emtune"]):
        table.add_row(timing.name, f"{timing.seconds:.2f}", str(timing.generated_tokens), f"{timing.tokens_per_s:.0f}")
    console = Console()
    console.print(table)
    console.print(f"speedup (time): {result['speedup']:.1f}x   throughput ratio: {result['throughput_ratio']:.1f}x")


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
