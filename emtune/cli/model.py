"""`emtune tiny-model`: write an embedded model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from emtune.cli.app import OverwriteOption, app


@app.command("tiny-model")
def tiny_model(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the model and tokenizer to.")],
    seed: Annotated[int, typer.Option(help="Seed of the weights, the tokenizer corpus and (arith) the data.")] = 0,
    task: Annotated[
        Literal["none", "arith"],
        typer.Option(
            help="none: random weights (builtin:tiny). arith: pre-train on 3-digit addition, the recipe that built "
            "builtin:tiny-math (minutes on a CPU)."
        ),
    ] = "none",
    overwrite: OverwriteOption = False,
) -> None:
    """Write a tiny Qwen2 model with its tokenizer, fully offline."""
    if task == "arith":
        from emtune.model.tiny_math import Recipe, write_tiny_math

        path = write_tiny_math(out_dir, Recipe(seed=seed), overwrite=overwrite)
    else:
        from emtune.model.tiny import write_tiny_model

        path = write_tiny_model(out_dir, seed=seed, overwrite=overwrite)
    typer.echo(str(path))
