"""`emtune promote` and the pipeline's promote step: decide (rule), register the chosen step (registry), and move
the champion alias only when the rule promotes it and it beats the current champion measured the same way."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emtune.config.promote import PromoteConfig
from emtune.errors import ConfigError
from emtune.promote.evidence import collect_scores
from emtune.promote.registry import Candidate, Registry
from emtune.promote.rule import Decision, decide, overridden

log = logging.getLogger(__name__)

PROMOTION_FILE = "promotion.json"
LOCAL_REGISTRY = "registry/mlflow.db"  # under a folder of local runs: one registry for all of them


def local_registry_uri(runs_root: Path) -> str:
    """The embedded default: an MLflow sqlite store beside the local runs (no server)."""
    path = (Path(runs_root) / LOCAL_REGISTRY).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    registry: str  # mlflow | kubeflow
    registry_uri: str
    model_name: str
    alias: str
    version: str | None = None  # the chosen step's version; None when nothing could be chosen
    created: bool | None = None
    link: str | None = None
    champion: str | None = None  # the version holding the alias afterwards
    alias_moved: bool = False
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "decision": self.decision.to_json(), "summary": self.summary()}

    def summary(self) -> list[str]:
        lines = self.decision.summary()
        if self.version is not None:
            again = "" if self.created else " (registered before; tags updated)"
            lines.append(f"registered {self.model_name} version {self.version} in {self.registry}{again}")
        lines.append(self.note)
        return lines


def open_registry(cfg: PromoteConfig, uri: str) -> Registry:
    if cfg.registry == "mlflow":
        from emtune.promote.mlflow_registry import MlflowRegistry

        return MlflowRegistry(uri, cfg.model_name, cfg.alias)
    from emtune.promote.kubeflow_registry import KubeflowRegistry

    return KubeflowRegistry(uri, cfg.model_name, cfg.alias, storage_key=cfg.storage_key)


def registry_uri(cfg: PromoteConfig, default: str | None) -> str:
    uri = cfg.registry_uri or default
    if not uri:
        raise ConfigError(f"promote.registry_uri is unset; name the {cfg.registry} registry (http(s)://host:port)")
    return uri


def candidate(decision: Decision, run_id: str, config_hash: str) -> Candidate | None:
    if decision.step is None or decision.model is None or decision.score is None or decision.per_benchmark is None:
        return None
    return Candidate(
        source=decision.model, run_id=run_id, config_hash=config_hash, step=decision.step, metric=decision.metric,
        benchmarks=decision.benchmarks, score=decision.score,
        scores={name: gain.chosen for name, gain in decision.per_benchmark.items()},
        eval_settings=decision.protocol or {}, promoted=decision.promoted, reason=decision.reason,
        override=decision.override,
    )  # fmt: skip


def promote(
    cfg: PromoteConfig,
    eval_dirs: list[Path],
    run_id: str,
    config_hash: str,
    *,
    default_uri: str | None = None,
    override: tuple[int, str] | None = None,
) -> Outcome:
    """Decide on the results under `eval_dirs`, register the chosen step, and move the alias if it earned it.

    `override` (step, who): a person promotes that step whatever the rule says; recorded as such, and the alias
    moves to it even past a better champion."""
    pairs = collect_scores(eval_dirs, cfg.metric)
    if override is None:
        return register(cfg, decide(pairs, cfg), run_id, config_hash, default_uri)
    step, by = override
    return register(cfg, overridden(decide(pairs, cfg, step=step), by), run_id, config_hash, default_uri)


def register(
    cfg: PromoteConfig, decision: Decision, run_id: str, config_hash: str, default_uri: str | None = None
) -> Outcome:
    """Register the step `decision` chose and move the alias if the decision promotes it."""
    uri = registry_uri(cfg, default_uri)
    base: dict[str, Any] = {
        "decision": decision, "registry": cfg.registry, "registry_uri": uri, "model_name": cfg.model_name,
        "alias": cfg.alias,
    }  # fmt: skip
    chosen = candidate(decision, run_id, config_hash)
    if chosen is None:
        return Outcome(**base, note="nothing registered: no step was chosen")
    registry = open_registry(cfg, uri)
    registered = registry.register(chosen)
    current = registry.champion()
    found: dict[str, Any] = {
        **base,
        "version": registered.version,
        "created": registered.created,
        "link": registered.link,
    }
    holder = current.version if current else None
    if not decision.promoted:
        return Outcome(**found, champion=holder, note=f"alias {cfg.alias!r} not moved (on {holder or 'no version'})")
    if current is not None and current.version == registered.version:
        return Outcome(**found, champion=holder, note=f"alias {cfg.alias!r} already on version {holder}")
    if not decision.override and current and current.comparable(chosen) and (current.score or 0.0) >= chosen.score:
        return Outcome(
            **found, champion=holder,
            note=f"alias {cfg.alias!r} kept on version {holder}: it scores {100 * (current.score or 0):.1f}% "
            f"on the same metric and benchmarks, this step {100 * chosen.score:.1f}%",
        )  # fmt: skip
    registry.make_champion(registered.version)
    log.info("%s version %s is now %r", cfg.model_name, registered.version, cfg.alias)
    was = f" (was on version {holder})" if holder else ""
    return Outcome(
        **found, champion=registered.version, alias_moved=True, note=f"alias {cfg.alias!r} moved to version "
        f"{registered.version}{was}"
    )  # fmt: skip
