"""`emtune eval --benchmarks humaneval,kk-4,math500` then `emtune report` on the tiny model: one benchmark of
each kind, from fixture sources, graded by its own kind's grader, and a report grouped by kind.

The tiny model is random, so its answers are wrong: the checks are on the path — prompts of each kind, code run
in the sandbox (and a right answer for a fixture problem passing the same way), the report's kind rows."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from emtune.cli.app import app
from emtune.config.evaluate import EvalConfig
from emtune.data.benchmarks import load_benchmark
from emtune.data.kk_files import write_kk_benchmarks
from emtune.evaluate.backends import GenerationParams
from emtune.evaluate.grading import Grader
from emtune.evaluate.runner import benchmark_params

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_one_benchmark_of_each_kind_end_to_end(tmp_path: Path) -> None:
    (kk_spec,) = write_kk_benchmarks(tmp_path / "kk", [4], 2, 5)
    config = {
        "eval": {
            "backend": "hf",
            "max_new_tokens": 16,
            "grading_workers": 1,
            "batch_size": 4,
            "check_count": False,
            "benchmark_sampling": False,  # the specs' 3,072-4,096 tokens would take minutes on the random model
            "sources": {
                "humaneval": str(FIXTURES / "humaneval-mini.jsonl"),
                "math500": str(FIXTURES / "math500-mini.jsonl"),
                "kk-4": str(kk_spec.with_suffix(".jsonl")),
            },
            "sandbox": {"concurrency": 2},
        }
    }
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config))
    out = tmp_path / "eval"
    cli(
        "eval",
        "--model",
        "builtin:tiny",
        "--benchmarks",
        "humaneval,kk-4,math500",
        "--config",
        str(config_file),
        "--out",
        str(out),
    )

    kinds = {}
    for name, items in (("humaneval", 2), ("kk-4", 2), ("math500", 3)):
        metrics = json.loads((out / "builtin-tiny" / name / "metrics.json").read_text())
        samples = [
            json.loads(line) for line in (out / "builtin-tiny" / name / "samples.jsonl").read_text().splitlines()
        ]
        assert metrics["items"] == items == len(samples)
        kinds[name] = metrics["kind"]
        if name == "humaneval":
            assert all("self-contained Python script" in s["prompt"] and "check(" in s["gold"] for s in samples)
            assert all(s["extracted"] is not None and s["correct"] is False for s in samples)
            # ... while a right answer to the same item, graded the same way, passes.
            fixture = json.loads((FIXTURES / "humaneval-mini.jsonl").read_text().splitlines()[0])
            right = f"```python\n{fixture['prompt']}{fixture['canonical_solution']}```"
            with Grader() as grader:
                assert grader.grade([(right, samples[0]["gold"])], kind="code")[0].correct
        if name == "kk-4":
            assert all("CONCLUSION:" in s["prompt"] and " is a kn" in s["gold"] for s in samples)
    assert kinds == {"humaneval": "code", "kk-4": "logic", "math500": "math"}

    # `emtune grade` finds the kind beside the samples and grades them the same way again.
    for name in ("humaneval", "kk-4"):
        samples = out / "builtin-tiny" / name / "samples.jsonl"
        regraded = tmp_path / f"{name}-regraded.jsonl"
        cli("grade", str(samples), "--out", str(regraded))
        before = [json.loads(line) for line in samples.read_text().splitlines()]
        after = [json.loads(line) for line in regraded.read_text().splitlines()]
        assert [(r["extracted"], r["correct"]) for r in after] == [(r["extracted"], r["correct"]) for r in before]

    cli("report", str(out), "--out", str(tmp_path / "report"))
    text = (tmp_path / "report" / "report.md").read_text()
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    expected = ["benchmark", "math500", "math average", "humaneval", "code average", "kk-4", "logic average", "average"]
    assert rows[: len(expected)] == expected


def test_each_kind_decodes_with_its_specs_settings_unless_turned_off() -> None:
    ev = EvalConfig(n=4, temperature=0.6, max_new_tokens=3072)
    code, logic, math = (load_benchmark(name, check_count=False) for name in ("humaneval", "kk-2", "demo-arith"))
    assert (benchmark_params(ev, code).temperature, benchmark_params(ev, code).max_new_tokens) == (0.1, 4096)
    assert (benchmark_params(ev, logic).temperature, benchmark_params(ev, logic).n) == (0.0, 1)  # greedy: once
    assert benchmark_params(ev, math) == GenerationParams.from_config(ev)
    off = ev.model_copy(update={"benchmark_sampling": False})
    assert benchmark_params(off, code) == GenerationParams.from_config(off)
