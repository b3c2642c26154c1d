"""The one small interface both model registries sit behind, and what is registered: the chosen step's store
URI with its provenance and scores. Registering is idempotent: a run's step is one version, however often the
report or `emtune promote` runs; a second registration updates that version's tags."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

TAG = "emtune."  # prefix of every tag emtune writes


@dataclass(frozen=True)
class Candidate:
    """A step to register: where it is, where it came from, and how it scored."""

    source: str  # the step's store URI (s3://... or file://...)
    run_id: str
    config_hash: str
    step: int
    metric: str
    benchmarks: list[str]
    score: float
    scores: dict[str, float]  # per benchmark
    eval_settings: dict[str, Any]
    promoted: bool
    reason: str
    override: str | None = None  # who promoted it by hand

    @property
    def version_name(self) -> str:
        """The version's stable name in registries that name versions (Kubeflow): one per run and step."""
        return f"{self.run_id}-step-{self.step}"

    def tags(self) -> dict[str, str]:
        tags = {
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "step": str(self.step),
            "source": self.source,
            "metric": self.metric,
            "benchmarks": ",".join(self.benchmarks),
            "score": repr(self.score),
            "eval": json.dumps(self.eval_settings, sort_keys=True),
            "promoted": str(self.promoted).lower(),
            "reason": self.reason,
        }
        if self.override:
            tags["override"] = self.override
        tags.update({f"score.{name}": repr(value) for name, value in self.scores.items()})
        return {TAG + key: value for key, value in tags.items()}


@dataclass(frozen=True)
class Registered:
    version: str
    created: bool  # False: the run's step was registered before (its tags were updated)
    link: str | None  # where a person looks at it (the registry's UI), if known


@dataclass(frozen=True)
class Champion:
    version: str
    tags: dict[str, str]

    def comparable(self, candidate: Candidate) -> bool:
        """Measured the same way (metric and benchmarks), so their scores can be compared."""
        return self.tags.get(TAG + "metric") == candidate.metric and self.tags.get(TAG + "benchmarks") == ",".join(
            candidate.benchmarks
        )

    @property
    def score(self) -> float | None:
        value = self.tags.get(TAG + "score")
        return float(value) if value is not None else None


class Registry(Protocol):
    """A model registry holding versions of one registered model, one of which carries the champion alias."""

    def register(self, candidate: Candidate) -> Registered: ...

    def champion(self) -> Champion | None: ...

    def make_champion(self, version: str) -> None: ...
