"""The prompt set the trainer samples from: prep's output folder, its prompts.parquet, or a plain file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from emtune.errors import DataError

MANIFEST = "manifest.json"
PROMPTS_FILE = "prompts.parquet"


@dataclass(frozen=True)
class PromptSet:
    problems: list[str]
    prompt_format: str | None  # None: the file did not record one; the caller's config decides


def _read_table(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix in (".jsonl", ".json"):
            import pyarrow.json as pj

            return pj.read_json(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"prompts file {str(path)!r} is unreadable: {str(exc).splitlines()[0]}") from None
    raise DataError(f"prompts file {str(path)!r} has unknown format {suffix!r}; allowed: .parquet, .jsonl, .json")


def read_prompt_set(path: Path, field: str = "problem") -> PromptSet:
    """Unique problems in file order, plus the prompt format recorded by `emtune prep` if any."""
    path = Path(path)
    if path.is_dir():
        path = path / PROMPTS_FILE
    if not path.is_file():
        raise DataError(f"prompts file {str(path)!r} does not exist")
    table = _read_table(path)
    if field not in table.column_names:
        raise DataError(f"prompts file {str(path)!r} has no field {field!r}; fields: {', '.join(table.column_names)}")
    problems: list[str] = []
    seen: set[str] = set()
    for row, value in enumerate(table.column(field).to_pylist()):
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"prompts file {str(path)!r} row {row}: field {field!r} is empty or not text ({value!r})")
        if value not in seen:
            seen.add(value)
            problems.append(value)
    if not problems:
        raise DataError(f"prompts file {str(path)!r} holds no prompts")
    manifest = path.parent / MANIFEST
    prompt_format = None
    if manifest.is_file():
        prompt_format = json.loads(manifest.read_text(encoding="utf-8")).get("prompt_format")
    return PromptSet(problems=problems, prompt_format=prompt_format)
