"""The promotion rule: the best later step by the configured metric, promoted only when its gain over step 0
exceeds the margin and a one-sided paired test per problem says it is not noise (docs/promotion.md).

The test pairs each problem's score at the chosen step with its score at step 0 (the same problems, so problem
difficulty cancels). Per benchmark b with m_b problems and differences d_i: gain_b = mean(d), SE_b² = var(d)/m_b
(sample variance). Over B benchmarks: gain = Σ gain_b / B, SE = √(Σ SE_b²) / B, z = gain / SE, p = 1 − Φ(z).
The best of K later steps is tested at α/K (Bonferroni): picking the maximum of K noisy steps favours noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
from typing import Any

from emtune.config.promote import PromoteConfig
from emtune.promote.evidence import PairScores

TEST = "one-sided paired z-test per problem, Bonferroni over the candidate steps"
_TIE = 1e-12  # gains this close to zero are a tie (float noise of equal scores)


@dataclass(frozen=True)
class BenchmarkGain:
    problems: int
    base: float
    chosen: float
    gain: float
    se: float


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    metric: str
    benchmarks: list[str]
    margin: float
    alpha: float
    test: str = TEST
    candidates: int = 0  # later steps the best was chosen from (K)
    alpha_per_step: float | None = None  # alpha / K
    base_label: str | None = None
    base_score: float | None = None
    label: str | None = None  # the chosen step
    step: int | None = None
    model: str | None = None  # the chosen step's store URI
    score: float | None = None
    gain: float | None = None
    se: float | None = None
    z: float | None = None
    p_value: float | None = None
    per_benchmark: dict[str, BenchmarkGain] | None = None
    protocol: dict[str, Any] | None = None  # the eval settings the scores came from
    override: str | None = None  # who promoted this step against (or without) the rule

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("z", "se"):  # JSON has no infinity
            if data[key] is not None and not math.isfinite(data[key]):
                data[key] = None if math.isnan(data[key]) else str(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        """The decision `to_json` wrote (the report's, read back by the pipeline's promote step)."""
        fields = dict(data)
        for key in ("z", "se"):
            if isinstance(fields.get(key), str):
                fields[key] = float(fields[key])
        if fields.get("per_benchmark") is not None:
            fields["per_benchmark"] = {name: BenchmarkGain(**g) for name, g in fields["per_benchmark"].items()}
        return cls(**fields)

    def summary(self) -> list[str]:
        """The decision and its numbers in a few lines (the report, `emtune promote`, `make demo`)."""
        verdict = f"{'PROMOTED' if self.promoted else 'not promoted'}: {self.reason}"
        if self.gain is None or self.score is None or self.base_score is None:
            return [verdict]
        lines = [
            verdict,
            f"{self.metric} over {', '.join(self.benchmarks)}: {self.label} {100 * self.score:.1f}% vs "
            f"{self.base_label} {100 * self.base_score:.1f}% (gain {100 * self.gain:+.1f} points, "
            f"SE {_points(self.se)}, p {_p(self.p_value)}; margin {100 * self.margin:.1f} points, "
            f"alpha {self.alpha:g}/{self.candidates} steps)",
        ]
        for name, b in (self.per_benchmark or {}).items():
            lines.append(
                f"  {name} ({b.problems} problems): {100 * b.chosen:.1f}% vs {100 * b.base:.1f}% "
                f"({100 * b.gain:+.1f} ± {_points(b.se)})"
            )
        return lines


def _points(se: float | None) -> str:
    return "–" if se is None or not math.isfinite(se) else f"{100 * se:.1f} points"


def _p(p: float | None) -> str:
    return "–" if p is None else f"{p:.2g}"


def _paired(chosen: PairScores, base: PairScores) -> BenchmarkGain | str:
    """Gain and its standard error on one benchmark, or why the two cannot be paired."""
    if chosen.per_problem.keys() != base.per_problem.keys():
        return f"{chosen.label} and {base.label} were scored on different problems of {chosen.benchmark}"
    diffs = [chosen.per_problem[pid] - base.per_problem[pid] for pid in base.per_problem]
    m = len(diffs)
    mean = sum(diffs) / m
    var = sum((d - mean) ** 2 for d in diffs) / (m - 1) if m > 1 else math.inf
    return BenchmarkGain(m, base.mean, chosen.mean, mean, math.sqrt(var / m))


def undecided(cfg: PromoteConfig, reason: str) -> Decision:
    """Not promoted, because the rule could not be applied (say why)."""
    return Decision(False, reason, cfg.metric, list(cfg.benchmarks or []), cfg.margin, cfg.alpha)


def overridden(decision: Decision, by: str) -> Decision:
    """`decision`'s step promoted by a person whatever the rule said; the rule's numbers and verdict are kept."""
    if decision.step is None:
        return decision  # nothing to promote: the reason says why
    return replace(
        decision, promoted=True, override=by, reason=f"promoted by {by} (override); the rule: {decision.reason}"
    )


def decide(pairs: list[PairScores], cfg: PromoteConfig, *, step: int | None = None) -> Decision:
    """Choose the best later step by `cfg.metric` over `cfg.benchmarks` (or take `step`, a person's choice) and
    decide whether to promote it."""
    evaluated = sorted({p.benchmark for p in pairs})
    benchmarks = list(cfg.benchmarks) if cfg.benchmarks else evaluated
    settings: dict[str, Any] = {
        "metric": cfg.metric,
        "benchmarks": benchmarks,
        "margin": cfg.margin,
        "alpha": cfg.alpha,
    }

    def refuse(reason: str, **more: Any) -> Decision:
        return Decision(promoted=False, reason=reason, **settings, **more)

    missing = [b for b in benchmarks if b not in evaluated]
    if missing:
        return refuse(f"no results for promote.benchmarks {missing}; evaluated: {evaluated}")
    by_step: dict[int, dict[str, PairScores]] = {}
    for pair in pairs:
        if pair.benchmark in benchmarks:
            by_step.setdefault(pair.step, {})[pair.benchmark] = pair
    complete = {step: found for step, found in by_step.items() if len(found) == len(benchmarks)}
    if 0 not in complete:
        return refuse("step 0 (the base model) was not evaluated on every benchmark, so there is nothing to beat")
    later = sorted(step for step in complete if step > 0)
    if not later:
        return refuse("no step after step 0 was evaluated on every benchmark")

    def score(step: int) -> float:
        return sum(complete[step][b].mean for b in benchmarks) / len(benchmarks)

    if step is not None and step not in later:
        return refuse(f"step {step} is not a later step evaluated on every benchmark; those are {later}")
    best = step if step is not None else max(later, key=lambda s: (score(s), -s))  # the earliest step wins a tie
    gains: dict[str, BenchmarkGain] = {}
    for b in benchmarks:
        paired = _paired(complete[best][b], complete[0][b])
        if isinstance(paired, str):
            return refuse(paired)
        gains[b] = paired
    gain = sum(g.gain for g in gains.values()) / len(benchmarks)
    se = math.sqrt(sum(g.se**2 for g in gains.values())) / len(benchmarks)
    z = gain / se if se > 0 else (math.inf if gain > _TIE else 0.0 if abs(gain) <= _TIE else -math.inf)
    p_value = 1.0 - NormalDist().cdf(z) if math.isfinite(z) else (0.0 if z > 0 else 1.0)
    per_step = cfg.alpha / len(later)
    chosen = complete[best][benchmarks[0]]
    numbers: dict[str, Any] = {
        "candidates": len(later), "alpha_per_step": per_step, "base_label": complete[0][benchmarks[0]].label,
        "base_score": score(0), "label": chosen.label, "step": best, "model": chosen.model, "score": score(best),
        "gain": gain, "se": se, "z": z, "p_value": p_value, "per_benchmark": gains, "protocol": chosen.protocol,
    }  # fmt: skip
    points = f"{100 * gain:+.1f} points"
    if abs(gain) <= _TIE:
        return refuse(f"tie: {chosen.label}, the best later step, scores the same as step 0", **numbers)
    if gain < 0:
        return refuse(f"regression: the best later step, {chosen.label}, is {points} against step 0", **numbers)
    if gain <= cfg.margin:
        return refuse(f"gain {points} is not above the margin ({100 * cfg.margin:.1f} points)", **numbers)
    if p_value >= per_step:
        return refuse(
            f"gain {points} is within noise: p = {p_value:.2g} is not below alpha/K = {cfg.alpha:g}/{len(later)}",
            **numbers,
        )
    reason = f"gain {points} > margin and significant (p = {p_value:.2g} < {per_step:.2g})"
    return Decision(promoted=True, reason=reason, **settings, **numbers)
