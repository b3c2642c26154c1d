"""The retrain form, generated from RunConfig: one input per hyper-parameter (name, type, allowed range and help
text come from the config model), parsed back and validated by the same model, with errors per field.

The compile-time `pipeline` section and any nested value can still be set through the "advanced" YAML field.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from emtune.config import RunConfig, section_fields
from emtune.config.base import Section
from emtune.config.docs import allowed
from emtune.pipeline.params import COMPILE_TIME_SECTIONS, strip_optional

ADVANCED = "advanced"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
REDACTED = "***"
MAX_YAML_CHARS = 64 * 1024


# libyaml where it is installed (about ten times faster: the runs list parses every run's config once).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, max_chars: int = MAX_YAML_CHARS) -> Any:
    """A YAML value from a user or a run folder, refused (YAMLError) when longer than `max_chars`, when it uses
    anchors/aliases (a config needs none, and they are how a few bytes expand to gigabytes) or is absurdly nested."""
    if len(text) > max_chars:
        raise yaml.YAMLError(f"longer than {max_chars} characters")
    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=_LOADER)):
            raise yaml.YAMLError("YAML aliases (*name) are not allowed here")
        return yaml.load(text, Loader=_LOADER)  # a safe loader: plain data only
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


@dataclass(frozen=True)
class FormField:
    key: str  # dotted config key; also the input's name
    section: str
    kind: str  # int | float | text | bool | select | yaml
    optional: bool
    options: tuple[str, ...]  # for select
    allowed: str  # e.g. "> 0, ≤ 1"
    help: str


def _kind(annotation: Any) -> tuple[str, tuple[str, ...]]:
    if typing.get_origin(annotation) is Literal:
        return "select", tuple(str(value) for value in typing.get_args(annotation))
    origin = typing.get_origin(annotation) or annotation
    if origin is bool:
        return "bool", ()
    if origin is int:
        return "int", ()
    if origin is float:
        return "float", ()
    if origin in (list, dict):
        return "yaml", ()
    return "text", ()


def _leaves(model: type[BaseModel], prefix: str, section: str) -> list[FormField]:
    fields = []
    for name, info in model.model_fields.items():
        annotation, optional = strip_optional(info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, Section):
            fields += _leaves(annotation, f"{prefix}{name}.", section)
            continue
        kind, options = _kind(annotation)
        fields.append(
            FormField(f"{prefix}{name}", section, kind, optional, options, allowed(info), info.description or "")
        )
    return fields


def form_fields() -> list[FormField]:
    """One field per run-time hyper-parameter, in the config model's order."""
    fields = []
    for section, info in RunConfig.model_fields.items():
        if section not in COMPILE_TIME_SECTIONS:
            assert isinstance(info.annotation, type) and issubclass(info.annotation, Section)
            fields += _leaves(info.annotation, f"{section}.", section)
    return fields


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value of a config dump (lists and dicts of values are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and _is_section(f"{prefix}{key}"):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _is_section(dotted: str) -> bool:
    model: Any = RunConfig
    for part in dotted.split("."):
        info = model.model_fields.get(part)
        annotation = strip_optional(info.annotation)[0] if info else None
        if not (isinstance(annotation, type) and issubclass(annotation, Section)):
            return False
        model = annotation
    return True


def redact(value: Any) -> Any:
    """Credentials inside URLs (scheme://user:secret@host) never reach a page."""
    if isinstance(value, str):
        return _USERINFO.sub(rf"\g<scheme>{REDACTED}@", value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    return value


def display(value: Any) -> str:
    """A leaf value as the form shows it (and as `parse_form` reads it back)."""
    value = redact(value)
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)  # JSON is YAML flow syntax
    return str(value)


def form_values(cfg: RunConfig) -> dict[str, Any]:
    return flatten(cfg.model_dump(mode="json"))


@dataclass
class FormResult:
    config: RunConfig | None
    errors: dict[str, str]  # dotted key (or ADVANCED, or a section) -> message


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[leaf] = value


def merge_nested(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_nested(base[key], value)
        else:
            base[key] = value
    return base


def form_items(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """A submitted form as one value per name: a checked checkbox ("true") wins over its hidden "false"."""
    items: dict[str, str] = {}
    for name, value in pairs:
        if items.get(name) != "true":
            items[name] = value
    return items


def parse_form(form: Mapping[str, str], source: RunConfig) -> FormResult:
    """The submitted form as a validated RunConfig, or every problem keyed by the field it belongs to."""
    data = source.model_dump(mode="json")
    before = flatten(data)
    errors: dict[str, str] = {}
    for field in form_fields():
        if field.key not in form:
            continue
        if field.kind == "bool":  # a checkbox sends "true" after its hidden "false"; see form_items
            _set(data, field.key, str(form[field.key]).lower() in ("true", "on", "1"))
            continue
        raw = str(form[field.key]).strip()
        shown = display(before.get(field.key))
        if raw == shown:
            continue  # unchanged (this also keeps a redacted secret as it was)
        if REDACTED in raw and REDACTED in shown:
            errors[field.key] = f"{field.key}: retype the whole value (its hidden credentials show as {REDACTED})"
            continue
        if raw == "" and field.optional:
            _set(data, field.key, None)
        elif field.kind == "yaml":
            try:
                _set(data, field.key, load_yaml(raw))
            except yaml.YAMLError as exc:
                errors[field.key] = f"{field.key} = {raw[:80]!r} is not a YAML/JSON value ({_first_line(exc)})"
        else:
            _set(data, field.key, raw)  # pydantic parses and checks numbers, choices and ranges
    advanced = str(form.get(ADVANCED, "")).strip()
    if advanced:
        try:
            extra = load_yaml(advanced)
            if not isinstance(extra, dict):
                raise yaml.YAMLError("not a mapping")
            merge_nested(data, extra)
        except yaml.YAMLError as exc:
            errors[ADVANCED] = (
                f"advanced: expected a YAML mapping of sections, e.g. 'eval: {{limit: 5}}' ({_first_line(exc)})"
            )
    if errors:
        return FormResult(None, errors)
    try:
        return FormResult(RunConfig.model_validate(data), {})
    except ValidationError as err:
        return FormResult(None, validation_errors(err))


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or ["not valid YAML"])[0][:120]


def validation_errors(err: ValidationError) -> dict[str, str]:
    """Each problem under its dotted key: the value given, what is wrong and what the field allows."""
    by_field = {field.key: field for field in form_fields()}
    errors: dict[str, str] = {}
    for problem in err.errors():
        loc = [str(part) for part in problem["loc"]]
        key = ".".join(loc)
        if problem["type"] == "extra_forbidden":
            allowed_keys = ", ".join(sorted(section_fields(RunConfig, loc[:-1])))
            errors[ADVANCED] = f"unknown config key '{key}' (allowed here: {allowed_keys})"
            continue
        field = by_field.get(key)
        rule = f" (allowed: {field.allowed})" if field and field.allowed else ""
        value = redact(problem.get("input"))
        message = problem["msg"].removeprefix("Value error, ")
        target = key if field else (loc[0] if loc and loc[0] not in COMPILE_TIME_SECTIONS else ADVANCED)
        shown = f"{key} = {value!r}: " if field else f"{key}: "
        errors[target] = f"{shown}{message}{rule}"
    return errors


def config_diff(before: RunConfig, after: RunConfig) -> list[tuple[str, Any, Any]]:
    """(key, old, new) for every leaf that differs, secrets redacted."""
    old, new = form_values(before), form_values(after)
    return [(key, redact(old.get(key)), redact(new.get(key))) for key in new if old.get(key) != new.get(key)]


def multi_diff(configs: list[RunConfig]) -> list[tuple[str, list[Any]]]:
    """(key, values per config) for every leaf on which the configs disagree."""
    flat = [form_values(cfg) for cfg in configs]
    keys = dict.fromkeys(key for values in flat for key in values)
    rows = []
    for key in keys:
        values = [redact(values.get(key)) for values in flat]
        if any(value != values[0] for value in values[1:]):
            rows.append((key, values))
    return rows
