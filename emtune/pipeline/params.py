"""Pipeline parameters generated from the run-config model: one per hyper-parameter, same default and help.

Every leaf field of RunConfig outside the compile-time `pipeline` section becomes a KFP parameter named by
its dotted key with `_` for `.` (`train.learning_rate` -> `train_learning_rate`). Inside the pipeline every
parameter reaches every step as an input of its own (spelled out in each component's signature, see
`emtune.pipeline.component_inputs`), so any value arrives intact, and `resolve_config` turns them back into a
validated RunConfig.

Optional fields are text parameters where the empty string means unset, not `Optional[...] = None` inputs: KFP
2.17's API server refuses an explicit null for a typed pipeline parameter ("input parameter ... requires type
string", backend/src/apiserver/template/v2_template.go), so a run could unset a key only by leaving it out, which
falls back to the compiled default; a pipeline compiled with `data.source` set could then never run without one.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from emtune.config import RunConfig, validate_config
from emtune.config.base import Section
from emtune.errors import ConfigError

# Fixed when the pipeline is compiled: it shapes the graph (fan-out, images, pods), so not a run parameter.
COMPILE_TIME_SECTIONS = ("pipeline",)
# Lineage carried as run parameters (no step reads them), so KFP itself records who started a run and why, and a
# clone in the KFP UI shows them; "" when unknown.
PROVENANCE_PARAMS = {
    "provenance_trigger": "What started the run: manual, schedule, dashboard or api.",
    "provenance_requested_by": "Who asked for the run.",
    "provenance_parent_run": "The run this one re-runs.",
}


@dataclass(frozen=True)
class ParamSpec:
    name: str  # the KFP parameter
    key: str  # the dotted config key
    kfp_type: type  # str | int | float | bool | list | dict
    optional: bool  # None allowed: carried as text, "" = unset
    text: bool  # the value is a string (str, Path, string Literal): passed through undecoded
    description: str


def strip_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


def _is_text(annotation: Any) -> bool:
    if annotation in (str, Path):
        return True
    return typing.get_origin(annotation) is Literal and all(isinstance(a, str) for a in typing.get_args(annotation))


def _kfp_type(annotation: Any) -> type:
    origin = typing.get_origin(annotation) or annotation
    for python_type in (bool, int, float, list, dict):
        if origin is python_type:
            return python_type
    return str


def _leaf_specs(model: type[BaseModel], prefix: str) -> list[ParamSpec]:
    specs = []
    for field_name, field in model.model_fields.items():
        key = f"{prefix}{field_name}"
        annotation, optional = strip_optional(field.annotation)
        if isinstance(annotation, type) and issubclass(annotation, Section):
            specs += _leaf_specs(annotation, f"{key}.")
            continue
        text = _is_text(annotation)
        specs.append(
            ParamSpec(
                name=key.replace(".", "_"),
                key=key,
                kfp_type=str if optional or text else _kfp_type(annotation),
                optional=optional,
                text=text,
                description=(field.description or key) + (" (empty: unset)" if optional else ""),
            )
        )
    return specs


def provenance_values(trigger: str, requested_by: str | None, parent_run: str | None) -> dict[str, str]:
    """The provenance parameters of one run ("" for unknown)."""
    return {
        "provenance_trigger": trigger,
        "provenance_requested_by": requested_by or "",
        "provenance_parent_run": parent_run or "",
    }


def param_specs() -> list[ParamSpec]:
    specs = []
    for section, field in RunConfig.model_fields.items():
        if section in COMPILE_TIME_SECTIONS:
            continue
        assert isinstance(field.annotation, type) and issubclass(field.annotation, Section)
        specs += _leaf_specs(field.annotation, f"{section}.")
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"config keys collide as pipeline parameters: {duplicates}"
    return specs


def _lookup(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def run_parameters_from(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The run parameters among a component's inputs (its `locals()`), by name."""
    return {spec.name: inputs[spec.name] for spec in param_specs()}


def encode(spec: ParamSpec, value: Any) -> Any:
    """A config value as its pipeline parameter's value."""
    if value is None:
        return ""
    if spec.kfp_type is str and not spec.text:
        return json.dumps(value)  # an optional number or list, carried as text
    return value


def param_values(cfg: RunConfig) -> dict[str, Any]:
    """Every pipeline parameter's value for `cfg` (the arguments of a run)."""
    data = cfg.model_dump(mode="json")
    return {spec.name: encode(spec, _lookup(data, spec.key)) for spec in param_specs()}


def pipeline_signature(cfg: RunConfig) -> inspect.Signature:
    """One typed parameter per hyper-parameter, with `cfg`'s values as defaults."""
    defaults = param_values(cfg)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [
            inspect.Parameter(spec.name, kind, default=defaults[spec.name], annotation=spec.kfp_type)
            for spec in param_specs()
        ]
        + [inspect.Parameter(name, kind, default="", annotation=str) for name in PROVENANCE_PARAMS]
    )


def params_docstring(summary: str) -> str:
    """A Google-style docstring whose Args are the parameters' help texts (KFP shows them in the UI)."""
    lines = [summary, "", "Args:"]
    lines += [f"    {spec.name}: {spec.description}" for spec in param_specs()]
    lines += [f"    {name}: {description}" for name, description in PROVENANCE_PARAMS.items()]
    return "\n".join(lines)


def config_from_params(params: dict[str, Any]) -> RunConfig:
    """A run's RunConfig from its parameter values (as KFP reports them); unknown and provenance names are
    ignored, missing ones keep their defaults, and the compile-time sections are the defaults."""
    data: dict[str, Any] = {}
    for spec in param_specs():
        if spec.name in params:
            _set_key(data, spec.key, _decode(spec, params[spec.name]))
    return validate_config(data)


def _set_key(data: dict[str, Any], dotted_key: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted_key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _decode(spec: ParamSpec, value: Any) -> Any:
    if value == "" and spec.optional:
        return None
    if spec.text or spec.kfp_type is not str or not isinstance(value, str):
        return value
    try:
        return json.loads(value)  # an optional number or list, carried as text
    except json.JSONDecodeError:
        return value  # validation names the key and the bad value


def resolve_config(compile_time_yaml: str, values: Mapping[str, Any]) -> RunConfig:
    """The run's RunConfig: the compile-time sections plus the run's parameter values, by parameter name."""
    data = yaml.safe_load(compile_time_yaml) or {}
    specs = {spec.name: spec for spec in param_specs()}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(
            f"pipeline parameters {unknown} name no config key; the pipeline is older or newer than emtune"
        )
    for name, value in values.items():
        _set_key(data, specs[name].key, _decode(specs[name], value))
    return validate_config(data)


def compile_time_yaml(cfg: RunConfig) -> str:
    """The sections baked into the compiled pipeline."""
    return yaml.safe_dump(cfg.model_dump(mode="json", include=set(COMPILE_TIME_SECTIONS)), sort_keys=False)
