"""The retrain policy: which config keys a dashboard user may set, and which paths a run may read.

A dashboard user changes a run's config through the form, the advanced YAML field or the JSON API; all three end
in one RunConfig, and this module judges that config against the one it started from (the source run's, or the
defaults). Keys outside the policy must keep the source's value; `model.trust_remote_code` must be off; every
path a run reads must be `builtin:` or lie under an operator-configured prefix (checked on the final config,
since a source run's config comes from a run folder and is not trusted either). The store is the launcher's
(it sets it), so no `store.*` key is ever the user's. The operator widens the key set explicitly
(`--retrain-allow`, chart value `dashboard.retrainAllow`), like W&B Launch's `manage_wandb_config(include=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from emtune.config import RunConfig
from emtune.dashboard.forms import form_values
from emtune.dashboard.launcher import LaunchError

# Hyper-parameters and the prompt: what people change when they rerun.
DEFAULT_ALLOWED = (
    "run.name",
    "run.seed",
    "data.mode",
    "data.index",
    "data.id",
    "data.text",
    "data.sample",
    "data.seed",
    "data.prompt_format",
    "train.*",
    "eval.*",
)
# Paths inside the sections above: never by pattern, only by naming them in --retrain-allow.
NOT_BY_PATTERN = ("train.prompts", "eval.sources")
NEVER = ("store.*",)  # the launcher's, whatever the operator allows
PATH_KEYS = ("model.path", "data.source", "data.output", "train.prompts")
BUILTIN = "builtin:"


class PolicyError(LaunchError):
    """A config sets what the dashboard's retrain policy does not allow."""


@dataclass(frozen=True)
class RetrainPolicy:
    extra: tuple[str, ...] = ()  # operator-allowed key patterns beyond DEFAULT_ALLOWED
    path_prefixes: tuple[str, ...] = ()

    def allows(self, key: str) -> bool:
        if any(fnmatchcase(key, pattern) for pattern in NEVER):
            return False
        if key in self.extra or any(key.startswith(f"{named}.") for named in self.extra):
            return True
        patterns = (*DEFAULT_ALLOWED, *self.extra)
        if any(key == named or key.startswith(f"{named}.") for named in NOT_BY_PATTERN):
            return False
        return any(fnmatchcase(key, pattern) for pattern in patterns)

    def check(self, source: RunConfig, new: RunConfig) -> None:
        """Refuse `new` unless it differs from `source` only in allowed keys and reads only allowed paths."""
        before, after = form_values(source), form_values(new)
        changed = [key for key in after if after[key] != before.get(key) and not self.allows(key)]
        if changed:
            raise PolicyError(
                f"the dashboard's retrain policy does not let you set {', '.join(changed)}; allowed: "
                f"{', '.join(self.allowed_patterns())} (the operator widens it with --retrain-allow)"
            )
        self.check_values(new)

    def check_values(self, new: RunConfig) -> None:
        """What a config may hold wherever it came from: no remote code, no path outside the prefixes."""
        if new.model.trust_remote_code and not self.allows("model.trust_remote_code"):
            raise PolicyError(
                "model.trust_remote_code = true runs the model folder's code; the dashboard's policy refuses it"
            )
        for key, value in _paths(new):
            if not self.path_allowed(value):
                raise PolicyError(f"{key} = {value!r} is not under an allowed prefix ({self.describe_prefixes()})")

    def allowed_patterns(self) -> list[str]:
        return [*DEFAULT_ALLOWED, *(pattern for pattern in self.extra if pattern not in DEFAULT_ALLOWED)]

    def path_allowed(self, value: str) -> bool:
        if value.startswith(BUILTIN):
            return True
        for prefix in self.path_prefixes:
            if "://" in prefix or not prefix.startswith("/"):  # a URI or hub-id prefix: by its text
                if value.startswith(prefix.rstrip("/") + "/") or value == prefix.rstrip("/"):
                    return True
            elif "://" not in value and _under(Path(value), Path(prefix)):
                return True
        return False

    def describe_prefixes(self) -> str:
        return ", ".join((BUILTIN, *self.path_prefixes)) + "; the operator adds prefixes with --path-prefix"


def _under(path: Path, prefix: Path) -> bool:
    """`path` (symlinks and `..` resolved) lies inside `prefix`."""
    try:
        return path.resolve().is_relative_to(prefix.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _paths(cfg: RunConfig) -> list[tuple[str, str]]:
    values: dict[str, Any] = form_values(cfg)
    paths = [(key, str(values[key])) for key in PATH_KEYS if values.get(key) not in (None, "")]
    paths += [(f"eval.sources.{name}", str(source)) for name, source in (cfg.eval.sources or {}).items()]
    return paths
