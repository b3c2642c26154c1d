"""The benchmark registry: which problems an evaluation asks, and the gold answer of each.

A benchmark is a small YAML spec (name, default source, question field, how to get the gold answer, expected
count). The built-ins are spec files shipped in `benchmark_specs/`; custom ones are registered from a file with
`register_benchmark_spec`, listed in $EMTUNE_BENCHMARK_SPECS (files or folders, os.pathsep-separated), or named
by their YAML path wherever a benchmark name is expected. Built-ins and custom specs go through the same code.

A source may be overridden per run: a local file, a local folder holding `<name>/test.jsonl` or `test.jsonl`
(the Qwen2.5-Math harness layout), an s3:// object or prefix laid out the same way, or hf://org/name[:config][@split].
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emtune.config.store import StoreConfig
from emtune.data.fields import answer_text, has_field, last_boxed, lookup, normalise_gold
from emtune.data.problems import id_at, text_at
from emtune.data.sources import SourceNotFound, SourceTable, read_source, split_s3_uri
from emtune.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BUILTIN_SPECS = Path(__file__).parent / "benchmark_specs"
SPECS_ENV = "EMTUNE_BENCHMARK_SPECS"
HARNESS_FILE = "test.jsonl"
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


class AnswerRule(BaseModel):
    """Where the gold answer lives: a field, read as a value or as the last \\boxed{} of a worked solution."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    field: str = Field(min_length=1, description="Field holding the answer (a.b for nested).")
    extract: Literal["value", "last_boxed"] = Field(
        "value", description="value: the field as text (first item of a list); last_boxed: its last \\boxed{}."
    )


class BenchmarkSpec(BaseModel):
    """One benchmark. Lists of fields are tried in order; the first the source has is used for every row."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Name used on the command line.")
    description: str = Field("", description="One line shown by `emtune benchmarks list`.")
    source: str = Field(min_length=1, description="Default source; a relative path is relative to the spec file.")
    count: int | None = Field(None, ge=1, description="Expected number of problems, checked on load.")
    question_field: list[str] = Field(min_length=1, description="Field(s) holding the question.")
    answer: list[AnswerRule] = Field(min_length=1, description="Where the gold answer is, in order of preference.")
    id_field: list[str] = Field(default_factory=lambda: ["id"], description="Field(s) holding the id; else row.")

    @field_validator("question_field", "id_field", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("answer", mode="before")
    @classmethod
    def _answer_shorthand(cls, value: Any) -> Any:
        """`answer: answer` or `answer: [a, {field: b, extract: last_boxed}]` both work."""
        items = value if isinstance(value, list) else [value]
        return [{"field": item} if isinstance(item, str) else item for item in items]


@dataclass(frozen=True)
class BenchmarkItem:
    id: str
    question: str
    gold: str


@dataclass(frozen=True)
class Benchmark:
    name: str
    items: list[BenchmarkItem]
    source: str = ""  # the file, object or dataset actually read
    sha256: str = ""  # of what was read (see SourceTable.sha256)
    spec: BenchmarkSpec | None = field(default=None, compare=False)


_registry: dict[str, BenchmarkSpec] = {}
_defaults_loaded = False


def _ensure_loaded() -> None:
    """Register the built-ins and $EMTUNE_BENCHMARK_SPECS once, before the first look-up."""
    global _defaults_loaded
    if _defaults_loaded:
        return
    _defaults_loaded = True
    for path in sorted(BUILTIN_SPECS.glob("*.yaml")):
        register_benchmark_spec(path)
    for entry in filter(None, os.environ.get(SPECS_ENV, "").split(os.pathsep)):
        entry_path = Path(entry)
        for path in sorted(entry_path.glob("*.y*ml")) if entry_path.is_dir() else [entry_path]:
            register_benchmark_spec(path)


def read_benchmark_spec(path: Path) -> BenchmarkSpec:
    """Parse and validate one spec file; a relative local source becomes a path next to the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"benchmark spec {str(path)!r} is unreadable: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"benchmark spec {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise DataError(f"benchmark spec {str(path)!r} must be a mapping (name, source, question_field, answer, ...)")
    try:
        spec = BenchmarkSpec.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'spec'}: {problem['msg']}" for problem in err.errors()
        )
        raise DataError(f"benchmark spec {str(path)!r} is invalid: {problems}") from None
    if not _SCHEME.match(spec.source) and not Path(spec.source).is_absolute():
        spec = spec.model_copy(update={"source": str((path.parent / spec.source).resolve())})
    return spec


def register_benchmark_spec(path: Path | str) -> BenchmarkSpec:
    """Add (or replace) a benchmark from its YAML spec file; returns the spec."""
    spec = read_benchmark_spec(Path(path))
    if spec.name in _registry and _registry[spec.name] != spec:
        log.info("benchmark %s: the spec in %s replaces the one registered before", spec.name, path)
    _registry[spec.name] = spec
    return spec


def list_benchmarks() -> list[BenchmarkSpec]:
    _ensure_loaded()
    return list(_registry.values())


def get_benchmark(name: str) -> BenchmarkSpec:
    """The spec registered as `name`; a path to a .yaml spec file registers it first."""
    _ensure_loaded()
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return register_benchmark_spec(name)
    if name not in _registry:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(_registry)} (or a path to a spec .yaml)")
    return _registry[name]


def check_source_names(sources: Mapping[str, str]) -> None:
    """Every `eval.sources` key must name a benchmark: a mistyped one would evaluate the default source."""
    _ensure_loaded()
    for name in sources:
        if name not in _registry and not (name.endswith((".yaml", ".yml")) and Path(name).is_file()):
            known = ", ".join(_registry)
            raise ConfigError(
                f"eval.sources key {name!r} names no benchmark; known: {known} (or a path to a spec .yaml)"
            )


def load_benchmark(
    name: str, source: str | None = None, *, check_count: bool = True, store: StoreConfig | None = None
) -> Benchmark:
    """Every item of benchmark `name`, from `source` (default: the spec's), with its gold answer.

    `store` carries the S3 endpoint/region settings for s3:// sources (default: boto3's environment).
    """
    spec = get_benchmark(name)
    table = _read_first_found(_candidates(spec.name, source or spec.source), store)
    items = _items(spec, table)
    if check_count and spec.count is not None and len(items) != spec.count:
        raise DataError(
            f"benchmark {spec.name!r} from {table.uri!r} has {len(items)} items; expected {spec.count}"
            " (another version of the set? --no-check-count or check_count=False accepts it)"
        )
    log.info("benchmark %s: %d items from %s", spec.name, len(items), table.uri)
    return Benchmark(name=spec.name, items=items, source=table.uri, sha256=table.sha256, spec=spec)


def _candidates(name: str, source: str) -> list[str]:
    """Where to look: the source itself, or inside a folder / S3 prefix `<name>/test.jsonl` then `test.jsonl`."""
    if source.startswith("hf://"):
        return [source]
    if source.startswith("s3://"):
        bucket, key = split_s3_uri(source)
        if Path(key).suffix:
            return [source]
        prefix = f"s3://{bucket}/{key.strip('/') + '/' if key.strip('/') else ''}"
        return [f"{prefix}{name}/{HARNESS_FILE}", f"{prefix}{HARNESS_FILE}"]
    folder = Path(source.removeprefix("file://"))
    if folder.is_dir():
        return [str(folder / name / HARNESS_FILE), str(folder / HARNESS_FILE)]
    return [source]


def _read_first_found(candidates: list[str], store: StoreConfig | None) -> SourceTable:
    for uri in candidates:
        try:
            return read_source(uri, store=store)
        except SourceNotFound:
            continue
    raise DataError(f"benchmark source not found: looked for {' and '.join(repr(uri) for uri in candidates)}")


def _first_present(table: SourceTable, fields: list[str]) -> str | None:
    return next((name for name in fields if has_field(table.columns, table.records[0], name)), None)


def _items(spec: BenchmarkSpec, table: SourceTable) -> list[BenchmarkItem]:
    if not table.records:
        raise DataError(f"benchmark {spec.name!r} source {table.uri!r} holds no rows")
    question_field = _first_present(table, spec.question_field)
    rule = next((rule for rule in spec.answer if has_field(table.columns, table.records[0], rule.field)), None)
    if question_field is None or rule is None:
        wanted = spec.question_field if question_field is None else [rule.field for rule in spec.answer]
        raise DataError(
            f"benchmark {spec.name!r} source {table.uri!r} has none of the fields {', '.join(wanted)};"
            f" fields: {', '.join(table.columns)}"
        )
    id_field = _first_present(table, spec.id_field)
    return [
        BenchmarkItem(
            id=id_at(table, row, id_field) if id_field else str(row),
            question=text_at(table, row, question_field).strip(),  # as the Qwen2.5-Math harness asks it
            gold=_gold(spec, table, row, rule),
        )
        for row in range(len(table.records))
    ]


def _gold(spec: BenchmarkSpec, table: SourceTable, row: int, rule: AnswerRule) -> str:
    value = lookup(table.records[row], rule.field)
    if rule.extract == "last_boxed":
        gold = last_boxed(value) if isinstance(value, str) else None
    else:
        try:
            gold = answer_text(value)
        except TypeError as exc:
            raise DataError(f"benchmark {spec.name!r} source {table.uri!r} row {row}: {rule.field!r}: {exc}") from None
    gold = normalise_gold(gold) if gold else gold
    if not gold:
        how = "has no \\boxed{} answer" if rule.extract == "last_boxed" else "is empty"
        raise DataError(f"benchmark {spec.name!r} source {table.uri!r} row {row}: field {rule.field!r} {how}")
    return gold
