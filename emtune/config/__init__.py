"""The one run config: YAML in, validated pydantic model out, with dotted command-line overrides.

Every step reads its own section (`data`, `train`, `store`, `eval`, ...). Each hyper-parameter is
defined once here or in its step's `config` module (name, default, range, help text) and reused by the
CLI, the pipeline parameters and the dashboard.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from emtune.config.base import Section
from emtune.config.data import DataConfig
from emtune.config.evaluate import EvalConfig
from emtune.config.pipeline import PipelineConfig
from emtune.config.promote import PromoteConfig
from emtune.config.store import StoreConfig
from emtune.config.train import TrainConfig
from emtune.errors import ConfigError


class RunSection(Section):
    name: str = Field("emtune", min_length=1, description="Run name, used in folder names and logs.")
    out_dir: Path = Field(Path("runs/emtune"), description="Folder for checkpoints, metrics and reports.")
    seed: int = Field(0, ge=0, description="Seed for sampling, data order and initialisation.")


class ModelConfig(Section):
    path: str = Field(
        "builtin:tiny",
        min_length=1,
        description="Local model folder, Hugging Face hub id, 'builtin:tiny' (the embedded random tiny model) or "
        "'builtin:tiny-math' (the embedded tiny model pre-trained on addition).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Dtype the weights are loaded in; 'auto' follows train.precision."
    )
    trust_remote_code: bool = Field(False, description="Allow model code shipped with a hub checkpoint.")


class LoggingConfig(Section):
    wandb_project: str | None = Field(None, description="Weights & Biases project; unset disables W&B.")
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = Field(
        "auto", description="'auto' is online when WANDB_API_KEY is set, else offline (never blocks)."
    )
    wandb_entity: str | None = Field(None, description="W&B entity (team or user).")


class RunConfig(Section):
    run: RunSection = Field(default_factory=RunSection)
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    promote: PromoteConfig = Field(default_factory=PromoteConfig)

    def digest(self) -> str:
        """A short stable hash of the whole config, recorded next to what the config produced."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _format_validation_error(err: ValidationError, model: type[Section] = RunConfig) -> str:
    """One line per problem: the dotted key, the value given and what is allowed."""
    lines = []
    for problem in err.errors():
        key = ".".join(str(part) for part in problem["loc"])
        value = problem.get("input")
        if problem["type"] == "extra_forbidden":
            known = sorted(section_fields(model, problem["loc"][:-1]))
            close = difflib.get_close_matches(str(problem["loc"][-1]), known, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else f"allowed here: {', '.join(known)}"
            lines.append(f"unknown config key '{key}' ({hint})")
        else:
            lines.append(f"config key '{key}' = {value!r}: {problem['msg']}")
    return "; ".join(lines)


def section_fields(model: type[Section], loc: Iterable[Any]) -> list[str]:
    current: Any = model
    for part in loc:
        field = current.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, Section):
            return list(current.model_fields)
        current = field.annotation
    return list(current.model_fields)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `section.key=value` override; the value is read as a YAML scalar or list."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key; expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested dict. None (`--set key=null`) unsets a key, as `key: null` does in YAML;
    callers drop the flags a user did not give before they get here."""
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{dotted}': '{part}' is a value, not a section")
            node = child
        node[leaf] = value
    return data


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Load and validate a run config; every problem is reported before any model is loaded."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}".splitlines()[0]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    apply_overrides(data, overrides or {})
    return validate_config(data)


def validate_config(data: Mapping[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
