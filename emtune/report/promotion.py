"""The promotion rule's verdict and numbers for the report (emtune.promote.rule decides; this only applies it to
the report's inputs, and says why when it cannot be applied)."""

from __future__ import annotations

from pathlib import Path

from emtune.config.promote import PromoteConfig
from emtune.errors import DataError
from emtune.promote.evidence import collect_scores
from emtune.promote.rule import Decision, decide, undecided


def promotion_decision(inputs: list[Path], cfg: PromoteConfig | None) -> Decision:
    """The rule's decision on the eval results under `inputs` (default settings when `cfg` is None)."""
    cfg = cfg or PromoteConfig()
    try:
        return decide(collect_scores(inputs, cfg.metric), cfg)
    except DataError as exc:
        return undecided(cfg, f"rule not applied: {exc}")
