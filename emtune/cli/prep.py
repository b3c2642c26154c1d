"""`emtune prep`: a source of problems -> prompts.parquet + manifest.json for the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emtune.cli.app import ConfigOption, OverwriteOption, SetOption, app, build_config


@app.command()
def prep(
    config: ConfigOption = None,
    sets: SetOption = None,
    source: Annotated[
        str | None,
        typer.Option(help="File (.parquet/.jsonl/.json/.csv), hf://org/name:config@split (both optional) or s3://."),
    ] = None,
    mode: Annotated[str | None, typer.Option(help="one_shot or multi_shot (data.mode).")] = None,
    index: Annotated[int | None, typer.Option(help="one_shot: the source row to use, from 0 (data.index).")] = None,
    problem_id: Annotated[
        str | None, typer.Option("--id", help="one_shot: the problem with this id (data.id).")
    ] = None,
    text: Annotated[str | None, typer.Option(help="one_shot: the problem with exactly this text (data.text).")] = None,
    sample: Annotated[int | None, typer.Option(help="multi_shot: a seeded sample of N problems (data.sample).")] = None,
    seed: Annotated[int | None, typer.Option(help="multi_shot: sample seed; default run.seed (data.seed).")] = None,
    shard: Annotated[str | None, typer.Option(help="multi_shot: keep shard k/n, 0 <= k < n (data.shard).")] = None,
    field: Annotated[str | None, typer.Option(help="Column with the problem text (data.field).")] = None,
    id_field: Annotated[str | None, typer.Option(help="Column with ids, if any (data.id_field).")] = None,
    answer_field: Annotated[str | None, typer.Option(help="Column with answers, if any (data.answer_field).")] = None,
    source_format: Annotated[
        str | None, typer.Option("--format", help="auto, parquet, jsonl, json or csv (data.format).")
    ] = None,
    prompt_format: Annotated[
        str | None, typer.Option(help="chat, qwen25-math-cot or raw (data.prompt_format).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (data.output); default <run.out_dir>/data.")] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Read, validate, dedupe and select problems; write prompts.parquet and manifest.json."""
    flags = {
        "data.source": source,
        "data.mode": mode,
        "data.index": index,
        "data.id": problem_id,
        "data.text": text,
        "data.sample": sample,
        "data.seed": seed,
        "data.shard": shard,
        "data.field": field,
        "data.id_field": id_field,
        "data.answer_field": answer_field,
        "data.format": source_format,
        "data.prompt_format": prompt_format,
        "data.output": out and str(out),
    }
    cfg = build_config(config, sets, flags)
    from emtune.data.prep import run

    folder = run(cfg, overwrite=overwrite)  # logs "N rows → M unique problems → K prompts (...)"
    typer.echo(f"prompt set: {folder}")
