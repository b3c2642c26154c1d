"""Reading one field of a record: dotted paths into nested columns, and answers normalised to text."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()
_MATH_DELIMITER = re.compile(r"(?<!\\)\$")  # a '$' that is not an escaped dollar sign '\$'
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
# Gold answers some benchmark files store in forms math-verify cannot match with a correct answer:
_DOT_BEFORE_SLASH = re.compile(r"(?<=\d)\.(?=\s*/)")  # '-1./3' (minerva_math): the number is -1/3
_TRAILING_PERCENT = re.compile(r"\s*\\?%$")  # '17.5%': a bare 17.5 is the answer asked for
# 't(0,4]' (olympiadbench): a variable's name glued to the interval that is its answer
_NAMED_INTERVAL = re.compile(r"^[A-Za-z]\s*(?:\\in\s*)?(?=[(\[][^()\[\],]*,[^()\[\],]*[)\]]$)")


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


def normalise_gold(text: str) -> str:
    """A gold answer in a form math-verify can match: math delimiters dropped (minerva_math's `+$ $` inside a
    box), a decimal point before a slash dropped (`-1./3`), a trailing percent sign dropped (`17.5%`), and a
    variable's name before its interval dropped (`t(0,4]`)."""
    text = _MATH_DELIMITER.sub("", text).strip()
    text = _DOT_BEFORE_SLASH.sub("", text)
    return _NAMED_INTERVAL.sub("", without_percent(text)).strip()


def without_percent(text: str) -> str:
    """An answer without its trailing percent sign (`17.5%`, `8 \\%`): the grader drops it from both the gold and
    the prediction, as the Qwen2.5-Math harness does, so 17.5 and 17.5% match either way."""
    return _TRAILING_PERCENT.sub("", text)


def last_boxed(text: str) -> str | None:
    r"""Content of the last \boxed{...} or \fbox{...} (braces balanced) or `\boxed x` in `text`; None if there is
    none. A box that never closes is skipped for the one before it."""
    for match in reversed(list(_BOXED.finditer(text))):
        rest = text[match.end() :]
        if not rest.startswith("{"):
            word = re.match(r"[^\s$]+", rest)
            if word:
                return word.group(0)
            continue
        depth = 0
        for index, char in enumerate(rest):
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth == 0:
                return rest[1:index].strip()
    return None
