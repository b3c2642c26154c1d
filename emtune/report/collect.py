"""Find what a report is made of: eval metrics (`metrics.json` per pair) and trainer metrics (`metrics.jsonl`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from emtune.errors import DataError
from emtune.fsutil import read_jsonl

log = logging.getLogger(__name__)

EVAL_METRICS = "metrics.json"
TRAIN_METRICS = "metrics.jsonl"
EVAL_RESULTS = "results.json"
_REQUIRED = ("label", "step", "benchmark", "accuracy")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc}") from None


def _files(inputs: list[Path], name: str) -> list[Path]:
    found: list[Path] = []
    for root in inputs:
        root = Path(root)
        if not root.exists():
            raise DataError(f"report input {str(root)!r} does not exist")
        found.extend([root] if root.is_file() and root.name == name else sorted(root.rglob(name)))
    return found


def input_files(inputs: list[Path], extra: list[Path] | None = None) -> list[Path]:
    """Every file a report built from `inputs` (and the trainer metrics `extra`) reads."""
    return [*_files(inputs, EVAL_METRICS), *_files(inputs, TRAIN_METRICS), *(Path(p) for p in extra or [])]


def collect_eval(inputs: list[Path]) -> list[dict[str, Any]]:
    """Every (checkpoint, benchmark) metrics record under `inputs`; a pair seen twice keeps the later one."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for path in _files(inputs, EVAL_METRICS):
        record = _read_json(path)
        if not isinstance(record, dict) or any(key not in record for key in _REQUIRED):
            log.debug("skipping %s: not an emtune eval metrics file", path)
            continue
        key = (record["label"], record["benchmark"])
        if key in pairs:
            log.warning("%s on %s appears twice; using %s", *key, path)
        pairs[key] = record
    if not pairs:
        raise DataError(f"no eval results (*/{EVAL_METRICS} from emtune eval) under {[str(p) for p in inputs]}")
    _warn_missing_pairs(inputs, set(pairs))
    return list(pairs.values())


def _warn_missing_pairs(inputs: list[Path], found: set[tuple[str, str]]) -> None:
    """An eval records the pairs it planned (results.json); those without metrics were cut short."""
    planned: set[tuple[str, str]] = set()
    for path in _files(inputs, EVAL_RESULTS):
        data = _read_json(path)
        if isinstance(data, dict) and isinstance(data.get("planned"), list):
            planned |= {(str(label), str(benchmark)) for label, benchmark in data["planned"]}
    missing = sorted(planned - found)
    if missing:
        log.warning(
            "the report is missing %d planned pair(s), left out by an interrupted eval: %s; rerun that eval with "
            "--resume to complete them",
            len(missing),
            ", ".join(f"{label} on {bench}" for label, bench in missing),
        )


def collect_training(inputs: list[Path], extra: list[Path] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Trainer metrics per run (named by its folder): found under `inputs`, plus the files `extra` names."""
    for path in extra or []:
        if not Path(path).is_file():
            raise DataError(f"trainer metrics file {str(path)!r} does not exist")
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in dict.fromkeys([*_files(inputs, TRAIN_METRICS), *(Path(p) for p in extra or [])]):
        name = path.parent.name or str(path)
        runs[name if name not in runs else str(path.parent)] = training_rows(path)
    return runs


def training_rows(path: Path, *, skip_bad: bool = False) -> list[dict[str, Any]]:
    """The step lines of a trainer metrics file, by step; `skip_bad` for one still being written (see read_jsonl)."""
    rows = [row for row in read_jsonl(path, skip_bad=skip_bad) if "step" in row]
    return sorted(rows, key=lambda row: row["step"])
