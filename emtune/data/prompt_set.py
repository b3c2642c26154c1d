"""The prompt set the trainer samples from: prep's output folder, its prompts.parquet, or a plain file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from emtune.data.problems import read_problems, unique
from emtune.data.sources import read_source
from emtune.errors import DataError

MANIFEST = "manifest.json"
PROMPTS_FILE = "prompts.parquet"


@dataclass(frozen=True)
class PromptSet:
    problems: list[str]
    prompt_format: str | None  # None: the file did not record one; the caller's config decides


def read_prompt_set(path: Path, field: str = "problem") -> PromptSet:
    """Unique problems in file order, plus the prompt format recorded by `emtune prep` if any.

    A file written by prep always names its text column `problem`, whatever `field` the source used.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PROMPTS_FILE
    manifest = path.parent / MANIFEST
    prepared = path.name == PROMPTS_FILE and manifest.is_file()
    table = read_source(str(path))
    if not table.records:
        raise DataError(f"prompts file {str(path)!r} holds no prompts")
    problems = unique(read_problems(table, "problem" if prepared else field))
    prompt_format = None
    if prepared:
        try:
            prompt_format = json.loads(manifest.read_text(encoding="utf-8")).get("prompt_format")
        except (OSError, ValueError, AttributeError):
            raise DataError(f"prompt-set manifest {str(manifest)!r} is not a readable JSON object") from None
    return PromptSet(problems=[problem.problem for problem in problems], prompt_format=prompt_format)
