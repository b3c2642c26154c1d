"""Registering a Qwen2.5-Math-style `data/` folder: one spec per `<name>/test.jsonl`, with the question and
answer fields that dataset uses, so every maths set of the research harness can be evaluated without writing
specs by hand."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from emtune.data.benchmarks import HARNESS_FILE, read_benchmark_spec
from emtune.data.fields import has_field, lookup
from emtune.data.sources import read_source
from emtune.errors import DataError
from emtune.fsutil import atomic_write_text

log = logging.getLogger(__name__)

# The harness's datasets name their fields differently; the first present is used (as its loader does).
QUESTION_FIELDS = ("question", "problem", "Question", "Problem", "input", "query")
ANSWER_FIELDS = ("answer", "Answer", "final_answer", "target", "gt_answer", "gt", "correct")
SOLUTION_FIELDS = ("solution",)  # worked solutions: the gold is their last \boxed{}


@dataclass(frozen=True)
class Registered:
    name: str
    spec: Path | None  # None: skipped, for `reason`
    reason: str = ""


def _spec_for(name: str, folder: Path) -> tuple[dict[str, object] | None, str]:
    table = read_source(str(folder / name / HARNESS_FILE))
    if not table.records:
        return None, "no rows"
    first = table.records[0]
    question = next((f for f in QUESTION_FIELDS if has_field(table.columns, first, f)), None)
    answer: dict[str, str] | None = None
    for field in ANSWER_FIELDS:
        if has_field(table.columns, first, field):
            value = lookup(first, field)
            hashes = isinstance(value, str) and "####" in value  # GSM8K's worked answer ends '#### 72'
            answer = {"field": field, "extract": "after_hashes" if hashes else "value"}
            break
    if answer is None:
        solution = next((f for f in SOLUTION_FIELDS if has_field(table.columns, first, f)), None)
        answer = {"field": solution, "extract": "last_boxed"} if solution else None
    if question is None or answer is None:
        missing = "question" if question is None else "answer"
        return None, f"no {missing} field among {', '.join(table.columns)}"
    spec = {
        "name": name,
        "kind": "math",
        "description": f"{name} (harness data folder)",
        "source": str(folder),
        "count": len(table.records),
        "question_field": question,
        "answer": [answer],
        "id_field": ["id", "idx"],
    }
    return spec, ""


def register_harness(folder: Path, out: Path) -> list[Registered]:
    """Write `out/<name>.yaml` for every `folder/<name>/test.jsonl` whose fields are recognised."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise DataError(f"harness data folder {str(folder)!r} is not a folder")
    names = sorted(p.parent.name for p in folder.glob(f"*/{HARNESS_FILE}"))
    if not names:
        raise DataError(f"harness data folder {str(folder)!r} holds no <name>/{HARNESS_FILE}")
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for name in names:
        spec, reason = _spec_for(name, folder)
        if spec is None:
            log.warning("harness dataset %s skipped: %s", name, reason)
            done.append(Registered(name, None, reason))
            continue
        path = out / f"{name}.yaml"
        atomic_write_text(path, json.dumps(spec, indent=2) + "\n")  # JSON is YAML
        read_benchmark_spec(path)  # what was written loads
        done.append(Registered(name, path))
    return done
