"""`emtune grade`: re-grade saved completions (maths, code or logic), so a grader upgrade never needs the GPUs
again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emtune.config.evaluate import SandboxConfig
from emtune.data.benchmarks import KINDS
from emtune.errors import DataError, OutputError
from emtune.evaluate.grading import grade_all
from emtune.fsutil import atomic_write_text, parse_jsonl


def _read_samples(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"samples file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(
            f"samples file {str(path)!r} is not UTF-8 text; expected JSONL (one JSON object a line)"
        ) from None
    records = parse_jsonl(text, f"samples file {str(path)!r}")
    for number, record in enumerate(records, 1):
        if "completion" not in record or "gold" not in record:
            raise DataError(f"{path}:{number} needs the fields 'completion' and 'gold'")
    if not records:
        raise DataError(
            f"samples file {str(path)!r} holds no samples; expected JSON lines with 'completion' and 'gold'"
        )
    return records


def samples_kind(samples: Path) -> str:
    """The benchmark kind of an emtune samples file (from the metrics.json beside it); math for any other file."""
    metrics = Path(samples).with_name("metrics.json")
    try:
        kind = json.loads(metrics.read_text(encoding="utf-8")).get("kind", "math")
    except (OSError, ValueError, AttributeError):
        return "math"
    return kind if kind in KINDS else "math"


def regrade(
    samples: Path,
    out: Path | None = None,
    *,
    timeout_s: float = 10.0,
    workers: int = 0,
    kind: str | None = None,
    sandbox: SandboxConfig | None = None,
) -> dict[str, Any]:
    """Grade every line of `samples` as a benchmark of `kind` (default: `samples_kind`); with `out`, write each line
    back in order with `extracted` and `correct`."""
    samples = Path(samples)
    if kind is not None and kind not in KINDS:
        raise DataError(f"--kind {kind!r} is not a benchmark kind; allowed: {', '.join(KINDS)}")
    if out is not None and Path(out).resolve() == samples.resolve():
        raise OutputError(f"--out {str(out)!r} is the samples file itself; write the regraded lines to another file")
    if out is not None and Path(out).is_dir():
        raise OutputError(f"--out {str(out)!r} is a folder; give the path of the JSONL file to write")
    records = _read_samples(samples)
    pairs = [(str(r["completion"]), str(r["gold"])) for r in records]
    grades = grade_all(pairs, timeout_s, workers, kind or samples_kind(samples), sandbox)
    if out is not None:
        lines = [
            json.dumps({**record, "extracted": grade.extracted, "correct": grade.correct}, ensure_ascii=False) + "\n"
            for record, grade in zip(records, grades, strict=True)
        ]
        atomic_write_text(Path(out), "".join(lines))
    correct = sum(grade.correct for grade in grades)
    return {
        "items": len(grades),
        "correct": correct,
        "accuracy": correct / len(grades) if grades else 0.0,
        "timeouts": sum(grade.timed_out for grade in grades),
    }
