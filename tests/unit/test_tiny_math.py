"""builtin:tiny-math: a shipped, loadable Qwen2 that knows 3-digit addition but not confidently; its benchmark and
one-shot problem are held out of its pre-training; its recipe is reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer

from emtune.data.benchmarks import load_benchmark
from emtune.model.loading import load_model, load_tokenizer, resolve_model
from emtune.model.tiny_math import (
    ONE_SHOT_FILE,
    RECIPE_FILE,
    TINY_MATH_DIR,
    Recipe,
    benchmark_rows,
    is_held_out,
    one_shot_problem,
    pass_rates,
    write_tiny_math,
)

PAIR = r"What is (\d+) \+ (\d+)\?"


def _operands(text: str) -> tuple[int, int]:
    import re

    match = re.fullmatch(PAIR, text)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def test_shipped_benchmark_is_the_generated_held_out_set() -> None:
    recipe = Recipe()
    benchmark = load_benchmark("demo-add")
    expected = benchmark_rows(recipe.benchmark_items, recipe.benchmark_seed)
    assert [(i.id, i.question, i.gold) for i in benchmark.items] == [
        (r["id"], r["problem"], r["answer"]) for r in expected
    ]
    pairs = [_operands(item.question) for item in benchmark.items]
    assert len(set(pairs)) == len(pairs) == 400
    assert all(is_held_out(a, b) for a, b in pairs)  # pre-training samples only pairs that are not
    assert all(item.gold == str(sum(pair)) for item, pair in zip(benchmark.items, pairs, strict=True))


def test_one_shot_problem_is_held_out_and_not_in_the_benchmark() -> None:
    problem = one_shot_problem()
    assert is_held_out(*_operands(problem))
    assert problem not in {item.question for item in load_benchmark("demo-add").items}
    chosen = json.loads((TINY_MATH_DIR / ONE_SHOT_FILE).read_text())
    rates = [c["pass_rate_t1"] for c in chosen["candidates"]]
    assert abs(chosen["pass_rate_t1"] - 0.5) == min(abs(r - 0.5) for r in rates)  # the stated rule


def test_builtin_tiny_math_is_a_vllm_compatible_qwen2_shipped_in_the_package() -> None:
    path = Path(resolve_model("builtin:tiny-math"))
    assert path == TINY_MATH_DIR and (path / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "qwen2" and config.hidden_size // config.num_attention_heads in (32, 64)
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = "<|im_start|>user\nWhat is 347 + 589?<|im_end|>\n"
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_sampled_accuracy_is_well_below_greedy() -> None:
    """The gap EM can close: the model knows most answers (greedy) but samples them unreliably at T=1."""
    model, tokenizer = load_model("builtin:tiny-math"), load_tokenizer("builtin:tiny-math")
    pairs = [_operands(item.question) for item in load_benchmark("demo-add").items[:200]]
    greedy = sum(pass_rates(model, tokenizer, pairs, 1, 0.0, seed=0)) / len(pairs)
    sampled = sum(pass_rates(model, tokenizer, pairs, 8, 1.0, seed=0)) / len(pairs)
    assert 0.5 < greedy < 1.0
    assert sampled < greedy - 0.05, (greedy, sampled)


@pytest.fixture(scope="module")
def short_recipe() -> Recipe:
    return Recipe(max_steps=2, eval_every=1, validation_items=4, one_shot_candidates=3, one_shot_samples=2)


def test_recipe_writes_a_loadable_model_and_is_deterministic(tmp_path: Path, short_recipe: Recipe) -> None:
    a = write_tiny_math(tmp_path / "a", short_recipe)
    b = write_tiny_math(tmp_path / "b", short_recipe)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    recipe = json.loads((a / RECIPE_FILE).read_text())
    assert recipe["recipe"]["max_steps"] == 2 and [h["step"] for h in recipe["history"]] == [1, 2]
    assert is_held_out(*_operands(one_shot_problem(a)))
    assert load_model(str(a)).config.model_type == "qwen2"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
