"""The promotion rule's verdict and numbers in the report, and the decision read back from results.json as the
pipeline's promote step does."""

from __future__ import annotations

import json
import math
from pathlib import Path

from promote_support import write_eval

from emtune.config.promote import PromoteConfig
from emtune.promote.rule import Decision
from emtune.report.build import run as build_report

BASE = [2, 3, 4, 5] * 10


def test_the_report_carries_the_decision_and_its_numbers(tmp_path: Path) -> None:
    evals = write_eval(tmp_path / "eval", "s3://b/run", {0: BASE, 2: [c + 2 for c in BASE], 4: BASE})
    out = build_report([evals], tmp_path / "report")
    promotion = json.loads((out / "results.json").read_text(encoding="utf-8"))["promotion"]
    assert promotion["promoted"] and promotion["label"] == "step-2" and promotion["candidates"] == 2
    assert promotion["model"] == "s3://b/run/step-2"
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "## Promotion" in markdown and "PROMOTED: gain +25.0 points" in markdown
    assert "amc23 (40 problems): 68.8% vs 43.8% (+25.0 ±" in markdown
    assert "PROMOTED: gain +25.0 points" in (out / "report.html").read_text(encoding="utf-8")
    strict = build_report([evals], tmp_path / "strict", promotion=PromoteConfig(margin=0.3))
    assert "not promoted: gain +25.0 points is not above the margin" in (strict / "report.md").read_text()


def test_a_report_without_samples_says_the_rule_was_not_applied(tmp_path: Path) -> None:
    evals = write_eval(tmp_path / "eval", "s3://b/run", {0: BASE, 2: BASE})
    out = build_report([evals], tmp_path / "report", promotion=PromoteConfig(metric="greedy"))
    promotion = json.loads((out / "results.json").read_text(encoding="utf-8"))["promotion"]
    assert not promotion["promoted"] and "rule not applied" in promotion["reason"]
    assert Decision.from_json(promotion).reason == promotion["reason"]


def test_a_decision_reads_back_from_json_even_with_an_infinite_z(tmp_path: Path) -> None:
    """Every problem up by the same amount: SE 0, z infinite (JSON has no infinity)."""
    evals = write_eval(tmp_path / "eval", "s3://b/run", {0: [4] * 10, 1: [5] * 10})
    out = build_report([evals], tmp_path / "report", promotion=PromoteConfig())
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))["promotion"]
    decision = Decision.from_json(data)
    assert decision.promoted and decision.z is not None and math.isinf(decision.z) and decision.se == 0
    assert decision.per_benchmark is not None and decision.per_benchmark["amc23"].problems == 10
