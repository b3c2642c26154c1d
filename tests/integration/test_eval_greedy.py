"""eval.greedy: sampled avg@n with greedy accuracy beside it, both graded, both saved, and shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

from emtune.config import load_config
from emtune.evaluate.runner import GREEDY_SAMPLES_FILE, METRICS_FILE, SAMPLES_FILE
from emtune.evaluate.runner import run as evaluate
from emtune.report.build import run as report

SETTINGS = {
    "eval.backend": "hf",
    "eval.prompt_format": "chat",
    "eval.limit": 24,
    "eval.n": 3,
    "eval.temperature": 1.0,
    "eval.max_new_tokens": 12,
    "eval.pass_k": [1],
    "eval.grading_workers": 1,
}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_greedy_accuracy_is_reported_beside_sampled(tmp_path: Path) -> None:
    cfg = load_config(None, {**SETTINGS, "eval.greedy": True, "run.out_dir": str(tmp_path / "run")})
    out = evaluate(cfg, ["builtin:tiny-math"], ["demo-add"], tmp_path / "eval")
    pair = out / "builtin-tiny-math" / "demo-add"
    metrics = json.loads((pair / METRICS_FILE).read_text())
    sampled, greedy = _lines(pair / SAMPLES_FILE), _lines(pair / GREEDY_SAMPLES_FILE)
    assert len(sampled) == 24 * 3 and len(greedy) == 24
    assert metrics["greedy"] == sum(r["correct"] for r in greedy) / 24
    assert metrics["accuracy"] == metrics["avg@3"] == sum(r["correct"] for r in sampled) / 72
    assert metrics["greedy"] > 0 and metrics["protocol"]["greedy"] is True

    page = report([out], tmp_path / "report") / "report.md"
    header = next(line for line in page.read_text().splitlines() if line.startswith("| checkpoint"))
    assert "| avg@3 |" in header and "| greedy |" in header


def test_no_greedy_pass_unless_asked(tmp_path: Path) -> None:
    cfg = load_config(None, {**SETTINGS, "run.out_dir": str(tmp_path / "run")})
    pair = evaluate(cfg, ["builtin:tiny-math"], ["demo-add"], tmp_path / "eval") / "builtin-tiny-math" / "demo-add"
    assert "greedy" not in json.loads((pair / METRICS_FILE).read_text())
    assert not (pair / GREEDY_SAMPLES_FILE).exists()
