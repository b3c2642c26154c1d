"""The demo's science, at CPU scale: EM on builtin:tiny-math's one-shot problem (configs/tiny.yaml, unchanged but
for the seed and the output folder) raises sampled accuracy (avg@n at T=1) on the 400 held-out demo-add problems,
by more than the seed-to-seed noise of the EM runs and more than the evaluation's own sampling noise."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from emtune.config import load_config
from emtune.evaluate.runner import RESULTS_FILE
from emtune.evaluate.runner import run as evaluate
from emtune.train.trainer import run as train

REPO = Path(__file__).resolve().parents[2]
EM_SEEDS = (0, 1, 2)
EVAL_SEEDS = (0, 1, 2)  # step 0 evaluated with several sampling seeds: the measurement's own noise


def _accuracy_by_step(cfg_out: Path) -> dict[int, float]:
    results = json.loads((cfg_out / RESULTS_FILE).read_text())["results"]
    return {int(r["step"]): float(r["accuracy"]) for r in results}


@pytest.mark.slow
def test_em_raises_sampled_accuracy_beyond_the_noise(tmp_path: Path) -> None:
    config = REPO / "configs" / "tiny.yaml"
    base = {}
    for seed in EVAL_SEEDS:
        cfg = load_config(config, {"run.out_dir": str(tmp_path / "base"), "eval.seed": seed})
        base[seed] = _accuracy_by_step(evaluate(cfg, [cfg.model.path], out=tmp_path / f"base-eval-{seed}"))[0]
    curves: dict[int, dict[int, float]] = {}
    for seed in EM_SEEDS:
        cfg = load_config(config, {"run.out_dir": str(tmp_path / f"em-{seed}"), "run.seed": seed})
        result = train(cfg)
        curves[seed] = {
            0: base[cfg.eval.seed],
            **_accuracy_by_step(evaluate(cfg, [str(result.run_dir)], out=tmp_path / f"eval-{seed}")),
        }

    steps = sorted(curves[EM_SEEDS[0]])
    mean = {step: statistics.mean(curves[s][step] for s in EM_SEEDS) for step in steps}
    best = max(steps[1:], key=lambda step: mean[step])
    effect = mean[best] - mean[0]
    seed_noise = statistics.stdev(curves[s][best] for s in EM_SEEDS)
    eval_noise = statistics.stdev(base.values())
    summary = {
        "mean_by_step": mean, "best_step": best, "effect": effect, "seed_noise": seed_noise, "eval_noise": eval_noise,
        "curves": curves, "base_by_eval_seed": base,
    }  # fmt: skip
    print(json.dumps(summary, indent=1))
    assert effect > 2 * max(seed_noise, eval_noise), summary
