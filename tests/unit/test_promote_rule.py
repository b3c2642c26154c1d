"""The promotion rule on constructed results: a real gain, a noise-sized gain, a regression, a tie, a gain under
the margin, and a best-of-K gain that only a test ignoring the choice among K steps would call significant."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from emtune.config.promote import PromoteConfig
from emtune.errors import DataError
from emtune.promote.evidence import PairScores, collect_scores
from emtune.promote.rule import decide

N = 8  # samples per problem


def pair(step: int, correct: list[int], benchmark: str = "amc23") -> PairScores:
    """A pair whose problem i had correct[i] of N samples right."""
    per_problem = {f"p{i}": c / N for i, c in enumerate(correct)}
    return PairScores(f"step-{step}", step, benchmark, f"s3://ckpts/run/step-{step}", per_problem, {"n": N})


def base_counts(problems: int = 40, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(0, N) for _ in range(problems)]


def shifted(counts: list[int], delta: list[int]) -> list[int]:
    return [min(N, max(0, c + d)) for c, d in zip(counts, delta, strict=True)]


def test_a_real_gain_is_promoted() -> None:
    base = base_counts()
    better = shifted(base, [3] * 40)  # about +30 points on every problem
    decision = decide([pair(0, base), pair(2, shifted(base, [1] * 40)), pair(4, better)], PromoteConfig())
    assert decision.promoted, decision.reason
    assert decision.step == 4 and decision.model == "s3://ckpts/run/step-4"
    assert decision.gain is not None and decision.gain > 0.2
    assert decision.p_value is not None and decision.p_value < 0.05 / 2
    assert decision.candidates == 2


def test_a_noise_sized_gain_is_not_promoted() -> None:
    """+2.5 points on 40 problems from problem-level noise (some up, some down): above the margin, within noise."""
    base = base_counts()
    rng = random.Random(1)
    delta = [rng.choice([-2, 2]) for _ in range(40)]
    noisy = shifted(base, delta)
    while sum(noisy) - sum(base) != 8:  # fix the total gain at 8 samples of 320: +2.5 points
        i = rng.randrange(40)
        noisy[i] = min(N, noisy[i] + 1) if sum(noisy) - sum(base) < 8 else max(0, noisy[i] - 1)
    decision = decide([pair(0, base), pair(1, noisy)], PromoteConfig())
    assert decision.gain == pytest.approx(0.025)
    assert not decision.promoted
    assert "within noise" in decision.reason
    assert decision.p_value is not None and decision.p_value > 0.05


def test_a_regression_is_not_promoted() -> None:
    base = base_counts()
    decision = decide([pair(0, base), pair(2, shifted(base, [-2] * 40))], PromoteConfig())
    assert not decision.promoted and decision.reason.startswith("regression")
    assert decision.gain is not None and decision.gain < 0


def test_a_tie_is_not_promoted_and_the_earliest_step_is_named() -> None:
    base = base_counts()
    decision = decide([pair(0, base), pair(2, base), pair(4, base)], PromoteConfig())
    assert not decision.promoted and decision.reason.startswith("tie")
    assert decision.step == 2 and decision.gain == 0


def test_a_significant_gain_under_the_margin_is_not_promoted() -> None:
    base = [4] * 200
    small = [5] * 10 + [4] * 190  # +0.6 points, every change upward: significant but small
    decision = decide([pair(0, base), pair(1, small)], PromoteConfig(margin=0.01))
    assert not decision.promoted and "margin" in decision.reason
    assert decide([pair(0, base), pair(1, small)], PromoteConfig(margin=0.0)).promoted


def test_the_best_of_several_steps_is_tested_at_alpha_over_k() -> None:
    """p between alpha/K and alpha: significant for one pre-chosen step, not for the best of ten."""
    base = [4] * 100
    best = shifted(base, [1] * 12 + [-1] * 4 + [0] * 84)  # +1 point, z = 2.03
    others = [pair(step, base) for step in range(2, 11)]
    single = decide([pair(0, base), pair(1, best)], PromoteConfig(margin=0.0))
    assert single.p_value is not None and 0.005 < single.p_value < 0.05, single.p_value
    assert single.promoted
    many = decide([pair(0, base), pair(1, best), *others], PromoteConfig(margin=0.0))
    assert many.step == 1 and many.p_value == pytest.approx(single.p_value)
    assert not many.promoted and "alpha/K = 0.05/10" in many.reason


def test_benchmarks_are_averaged_and_their_errors_combined() -> None:
    base_a, base_b = base_counts(40, 5), base_counts(30, 6)
    pairs = [pair(0, base_a, "amc23"), pair(0, base_b, "aime24"),
             pair(3, shifted(base_a, [2] * 40), "amc23"), pair(3, base_b, "aime24")]  # fmt: skip
    decision = decide(pairs, PromoteConfig())
    assert decision.per_benchmark is not None
    a, b = decision.per_benchmark["amc23"], decision.per_benchmark["aime24"]
    assert decision.gain == pytest.approx((a.gain + b.gain) / 2)
    assert decision.se == pytest.approx(math.sqrt(a.se**2 + b.se**2) / 2)
    only_b = decide(pairs, PromoteConfig(benchmarks=["aime24"]))
    assert only_b.reason.startswith("tie")


def test_what_cannot_be_decided_says_why() -> None:
    base = base_counts()
    assert "step 0" in decide([pair(2, base)], PromoteConfig()).reason
    assert "no step after" in decide([pair(0, base)], PromoteConfig()).reason
    assert "no results for" in decide([pair(0, base), pair(1, base)], PromoteConfig(benchmarks=["x"])).reason
    other = pair(1, base[:39])
    assert "different problems" in decide([pair(0, base), other], PromoteConfig()).reason


def _write_pair(root: Path, step: int, correct: list[list[bool]]) -> None:
    folder = root / f"step-{step}" / "demo-add"
    folder.mkdir(parents=True)
    metrics = {"label": f"step-{step}", "step": step, "benchmark": "demo-add", "model": f"file:///s/step-{step}",
               "accuracy": 0.0, "protocol": {"n": len(correct[0])}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"id": str(i), "sample": s, "correct": c} for i, row in enumerate(correct) for s, c in enumerate(row)]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_per_problem_scores_come_from_the_eval_samples(tmp_path: Path) -> None:
    _write_pair(tmp_path, 0, [[True, False], [False, False]])
    _write_pair(tmp_path, 2, [[True, True], [True, False]])
    scores = {p.step: p for p in collect_scores([tmp_path], "accuracy")}
    assert scores[0].per_problem == {"0": 0.5, "1": 0.0}
    assert scores[2].per_problem == {"0": 1.0, "1": 0.5}
    assert {p.step: p.per_problem for p in collect_scores([tmp_path], "pass@2")}[0] == {"0": 1.0, "1": 0.0}
    with pytest.raises(DataError, match=r"greedy_samples\.jsonl"):
        collect_scores([tmp_path], "greedy")
    with pytest.raises(DataError, match=r"eval\.n"):
        collect_scores([tmp_path], "pass@4")


def test_a_person_can_promote_a_step_the_rule_did_not() -> None:
    from emtune.promote.rule import overridden

    base = base_counts()
    pairs = [pair(0, base), pair(2, base), pair(4, shifted(base, [3] * 40))]
    chosen = decide(pairs, PromoteConfig(), step=2)
    assert chosen.step == 2 and not chosen.promoted and chosen.reason.startswith("tie")
    forced = overridden(chosen, "alice")
    assert forced.promoted and forced.override == "alice" and forced.step == 2
    assert forced.reason == "promoted by alice (override); the rule: " + chosen.reason
    assert forced.gain == chosen.gain and forced.p_value == chosen.p_value  # the rule's numbers stay on record
    missing = decide(pairs, PromoteConfig(), step=3)
    assert "step 3 is not a later step" in missing.reason and not overridden(missing, "alice").promoted
