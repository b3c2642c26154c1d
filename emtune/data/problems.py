"""Problems out of a source table: the text field validated row by row, ids and answers carried along."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emtune.data.fields import answer_text, available_fields, has_field, is_missing, lookup
from emtune.data.sources import SourceTable
from emtune.errors import DataError


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    answer: str | None
    row: int  # source row (from 0) of its first occurrence


def require_field(table: SourceTable, field: str) -> None:
    """Fail, listing the fields that do exist, unless the table has `field`."""
    if not table.records:
        raise DataError(f"source {table.uri!r} holds no rows")
    if not has_field(table.columns, table.records[0], field):
        fields = ", ".join(available_fields(table.columns, table.records[0]))
        raise DataError(f"source {table.uri!r} has no field {field!r}; fields: {fields}")


def text_at(table: SourceTable, row: int, field: str) -> str:
    """The non-empty text of `field` in `row`, or a DataError naming the row and what is there instead."""
    value = lookup(table.records[row], field)
    if value is None or is_missing(value):
        raise DataError(f"source {table.uri!r} row {row}: field {field!r} is missing")
    if not isinstance(value, str):
        kind = type(value).__name__
        raise DataError(f"source {table.uri!r} row {row}: field {field!r} holds {kind} {describe(value)}, not text")
    if not value.strip():
        raise DataError(f"source {table.uri!r} row {row}: field {field!r} is empty or whitespace only")
    return value


def id_at(table: SourceTable, row: int, field: str) -> str:
    value = lookup(table.records[row], field)
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise DataError(
            f"source {table.uri!r} row {row}: id field {field!r} is {describe(value)}; ids are text or integers"
        )
    return str(value)


def answer_at(table: SourceTable, row: int, field: str) -> str | None:
    try:
        return answer_text(lookup(table.records[row], field))
    except TypeError as exc:
        raise DataError(f"source {table.uri!r} row {row}: answer field {field!r}: {exc}") from None


def read_problems(
    table: SourceTable,
    field: str,
    id_field: str | None = None,
    answer_field: str | None = None,
    *,
    required: tuple[str, ...] = (),
) -> list[Problem]:
    """Every row's problem, validated; the id (answer) falls back to the row number (none) when the table has no
    id (answer) field, unless that field is in `required` (a name the user chose, so a typo is not silent)."""
    require_field(table, field)
    for name in required:
        require_field(table, name)
    id_path = _present(table, id_field)
    answer_path = _present(table, answer_field)
    return [
        Problem(
            id=id_at(table, row, id_path) if id_path else str(row),
            problem=text_at(table, row, field),
            answer=answer_at(table, row, answer_path) if answer_path else None,
            row=row,
        )
        for row in range(len(table.records))
    ]


def _present(table: SourceTable, field: str | None) -> str | None:
    return field if field and has_field(table.columns, table.records[0], field) else None


def unique(problems: list[Problem]) -> list[Problem]:
    """The first occurrence of each distinct problem text, in source order."""
    seen: dict[str, Problem] = {}
    for problem in problems:
        seen.setdefault(problem.problem, problem)
    return list(seen.values())


def describe(value: Any) -> str:
    """A short repr for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
