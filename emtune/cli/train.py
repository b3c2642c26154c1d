"""`emtune train`: the entropy-minimisation trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from emtune.cli.app import ConfigOption, SetOption, app, build_config
from emtune.config import RunConfig


@app.command()
def train(
    config: ConfigOption = None,
    sets: SetOption = None,
    model: Annotated[str | None, typer.Option(help="Model folder, hub id or builtin:tiny (model.path).")] = None,
    prompts: Annotated[str | None, typer.Option(help="Prompt set (train.prompts).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (run.out_dir).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer updates (train.max_steps).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the newest complete step (local, else store).")] = False,
) -> None:
    """Sample rollouts and minimise the entropy of the model's own next-token distributions."""
    cfg = build_config(
        config,
        sets,
        {"model.path": model, "train.prompts": prompts, "run.out_dir": out and str(out), "train.max_steps": max_steps},
    )
    from emtune.train.checkpointing import hold_run_folder

    with hold_run_folder(cfg):
        _train(cfg, resume)


def _train(cfg: RunConfig, resume: bool) -> None:
    from emtune.train.trainer import Trainer

    trainer = Trainer(cfg, resume=resume)
    show = trainer.accelerator.is_main_process
    columns = [TextColumn("step {task.completed}/{task.total}"), BarColumn(), TextColumn("{task.fields[stats]}"),
               TimeElapsedColumn()]  # fmt: skip
    with Progress(*columns, disable=not show, transient=False) as progress:
        task = progress.add_task("train", total=cfg.train.max_steps, completed=trainer.start_step, stats="")

        def on_step(m: dict) -> None:
            stats = (f"loss {m['loss']:.4f} entropy {m['entropy']:.4f} len {m['completion_tokens_mean']:.1f} "
                     f"{m['tokens_per_s']:.0f} tok/s")  # fmt: skip
            progress.update(task, completed=m["step"], stats=stats)

        result = trainer.train(on_step)
    if show:
        typer.echo(f"run folder: {result.run_dir}  saved steps: {result.steps}")
