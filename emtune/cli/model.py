"""`emtune tiny-model`: write the embedded default model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emtune.cli.app import OverwriteOption, app


@app.command("tiny-model")
def tiny_model(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the model and tokenizer to.")],
    seed: Annotated[int, typer.Option(help="Seed of the random weights and the tokenizer corpus.")] = 0,
    overwrite: OverwriteOption = False,
) -> None:
    """Write a randomly initialised tiny Qwen2 model with its tokenizer, fully offline."""
    from emtune.model.tiny import write_tiny_model

    path = write_tiny_model(out_dir, seed=seed, overwrite=overwrite)
    typer.echo(str(path))
