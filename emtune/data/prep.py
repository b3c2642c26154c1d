"""`emtune prep`: a source of problems -> the prompt set the trainer samples from.

Output folder (written whole or not at all):
  prompts.parquet  columns id (string), problem (string), answer (string, nullable); byte-identical for the
                   same inputs
  manifest.json    where the problems came from and how they were selected
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import emtune
from emtune.config import RunConfig
from emtune.config.data import DataConfig, parse_shard
from emtune.data.problems import Problem, read_problems, unique
from emtune.data.prompt_set import MANIFEST, PROMPTS_FILE
from emtune.data.sources import local_source_paths, read_source
from emtune.errors import DataError
from emtune.fsutil import atomic_dir, atomic_write_json, check_output

log = logging.getLogger(__name__)

PROMPTS_SCHEMA = pa.schema([("id", pa.string()), ("problem", pa.string()), ("answer", pa.string())])


def _named_fields(data: DataConfig) -> tuple[str, ...]:
    """The id/answer fields a source must have: those the user named. The defaults may be absent (ids fall back
    to row numbers); a name the user gave is no guess, so a typo in it must not silently fall back too."""
    defaults = DataConfig.model_fields
    return tuple(
        getattr(data, key) for key in ("id_field", "answer_field") if getattr(data, key) != defaults[key].default
    )


def run(cfg: RunConfig, out: Path | None = None, *, overwrite: bool = False) -> Path:
    """Read, validate, dedupe and select problems from cfg.data.source; write the prompt-set folder.

    An existing non-empty output is replaced only with `overwrite` and only if emtune wrote it.
    """
    data = cfg.data
    if not data.source:
        raise DataError("no source to prepare: set data.source (or --source) to a file, hf://... or s3://...")
    out = Path(out or data.output or Path(cfg.run.out_dir) / "data")
    inputs = local_source_paths(data.source)
    check_output(out, inputs, overwrite=overwrite)  # before reading: a refusal costs nothing
    table = read_source(data.source, fmt=data.format, store=cfg.store)
    rows = read_problems(table, data.field, data.id_field, data.answer_field, required=_named_fields(data))
    unique_count = len(unique(rows))
    chosen, selection = select(rows, data, default_seed=cfg.run.seed)
    if not chosen:
        raise DataError(f"shard {data.shard} of {unique_count} unique problems is empty; use fewer shards")

    manifest: dict[str, Any] = {
        "source": data.source,
        "source_sha256": table.sha256,
        "rows_read": len(rows),
        "rows_unique": unique_count,
        "rows_written": len(chosen),
        "field": data.field,
        "id_field": data.id_field,
        "answer_field": data.answer_field,
        "mode": data.mode,
        "selection": selection,
        "prompt_format": data.prompt_format,
        "emtune_version": emtune.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_dir(out, "prep", inputs=inputs, overwrite=overwrite) as tmp:
        write_prompts(chosen, tmp / PROMPTS_FILE)
        atomic_write_json(tmp / MANIFEST, manifest)
    log.info("%s: %s", data.source, summary(manifest))
    return out


def select(rows: list[Problem], data: DataConfig, default_seed: int = 0) -> tuple[list[Problem], dict[str, Any]]:
    """The problems the mode asks for (from every source row), and the selection as the manifest records it."""
    problems = unique(rows)
    if data.mode == "one_shot":
        picked = pick_one(rows, problems, data)
        return [picked], _one_shot_selection(data, picked)
    selection: dict[str, Any] = {}
    chosen = problems
    if data.sample is not None:
        seed = default_seed if data.seed is None else data.seed
        if data.sample > len(problems):
            raise DataError(f"sample {data.sample} is larger than the {len(problems)} unique problems in the source")
        keep = sorted(random.Random(seed).sample(range(len(problems)), data.sample))  # kept in source order
        chosen = [problems[i] for i in keep]
        selection.update(sample=data.sample, seed=seed)
    if data.shard is not None:
        k, n = parse_shard(data.shard)
        chosen = chosen[k::n]
        selection["shard"] = data.shard
    return chosen, selection or {"all": True}


def _one_shot_selection(data: DataConfig, picked: Problem) -> dict[str, Any]:
    for key in ("index", "id", "text"):
        if getattr(data, key) is not None:
            return {key: getattr(data, key)}
    return {"index": picked.row}  # the source's only problem


def pick_one(rows: list[Problem], problems: list[Problem], data: DataConfig) -> Problem:
    """The one-shot problem: the source row at data.index, the unique problem with data.id or data.text."""
    if data.index is not None:
        if data.index >= len(rows):
            raise DataError(f"index {data.index} is out of range: the source has {len(rows)} rows (0..{len(rows) - 1})")
        return rows[data.index]
    if data.id is not None:
        matches = [problem for problem in problems if problem.id == data.id]
        if not matches:
            shown = ", ".join(problem.id for problem in problems[:5])
            raise DataError(f"id {data.id!r} not found in field {data.id_field!r}; the first ids are {shown}")
        if len(matches) > 1:
            raise DataError(f"id {data.id!r} names {len(matches)} different problems; pick by index or text instead")
        return matches[0]
    if data.text is not None:
        for problem in problems:
            if problem.problem == data.text:
                return problem
        raise DataError(f"no problem has exactly the text {data.text[:60]!r} (whitespace and case count)")
    if len(problems) == 1:
        return problems[0]
    raise DataError(f"mode one_shot needs --index, --id or --text: the source has {len(problems)} unique problems")


def write_prompts(problems: list[Problem], path: Path) -> None:
    """Deterministic parquet: fixed schema, no pandas metadata, no timestamps."""
    table = pa.table(
        {
            "id": [problem.id for problem in problems],
            "problem": [problem.problem for problem in problems],
            "answer": [problem.answer for problem in problems],
        },
        schema=PROMPTS_SCHEMA,
    )
    pq.write_table(table, path, compression="zstd")


def summary(manifest: dict[str, Any]) -> str:
    """'1280 rows → 1 unique problem → 1 prompt (one_shot: index 0; format chat)'."""
    selection = ", ".join(f"{key} {value}" for key, value in manifest["selection"].items())
    counts = " → ".join(
        _plural(manifest[key], noun)
        for key, noun in (("rows_read", "row"), ("rows_unique", "unique problem"), ("rows_written", "prompt"))
    )
    return f"{counts} ({manifest['mode']}: {selection}; format {manifest['prompt_format']})"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
