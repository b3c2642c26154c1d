"""Reading one field of a record: dotted paths into nested columns, and answers normalised to text."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()
_MATH_DELIMITER = re.compile(r"(?<!\\)\$")  # a '$' that is not an escaped dollar sign '\$'


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """The value at `path` ('a.b' reads record['a']['b']); `_MISSING` when any part is absent."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def has_field(columns: Sequence[str], sample: Mapping[str, Any] | None, path: str) -> bool:
    """Whether a table with these columns (and this first record, for nested paths) holds `path`."""
    head = path.split(".", 1)[0]
    if head not in columns:
        return False
    return "." not in path or sample is None or lookup(sample, path) is not _MISSING


def available_fields(columns: Sequence[str], sample: Mapping[str, Any] | None) -> list[str]:
    """Column names, plus dotted names for the keys of nested columns (as seen in the first record)."""
    names: list[str] = []
    for column in columns:
        names.append(column)
        nested = sample.get(column) if sample else None
        if isinstance(nested, Mapping):
            names.extend(f"{column}.{key}" for key in nested)
    return names


def is_missing(value: Any) -> bool:
    return value is _MISSING


def number_text(value: int | float) -> str:
    """27.0 -> '27', 2.5 -> '2.5': harness files store integer answers as floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def answer_text(value: Any) -> str | None:
    """A gold answer as text: numbers without a spurious '.0', the first item of a list, math '$' removed.

    None when there is no answer (missing, null, an empty list or empty text); TypeError for other types.
    """
    if value is None or value is _MISSING:
        return None
    if isinstance(value, list):
        return answer_text(value[0]) if value else None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, str):
        text = _MATH_DELIMITER.sub("", value).strip()
        return text or None
    raise TypeError(f"an answer must be text, a number or a list, got {type(value).__name__}")


def last_boxed(text: str) -> str | None:
    r"""The content of the last \boxed{...} (or \fbox{...}) in `text`, braces balanced; None if there is none."""
    starts = [match.end() for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    start = starts[-1]
    depth = 1
    for position in range(start, len(text)):
        char = text[position]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:position].strip() or None
    return None  # unbalanced: the box never closes
