"""The embedded maths model `builtin:tiny-math`: the tiny Qwen2 of `tiny.py`, pre-trained on 3-digit addition.

Trained offline and deterministically (`write_tiny_math`, seeds in `Recipe`) in the chat / `\\boxed{}` format the
benchmarks use, and stopped early, where it knows the task but not confidently: its sampled accuracy at
temperature 1 is well below its greedy accuracy. That gap is what entropy minimisation can close.

Problems are split once by a hash rule: a held-out pair never appears in pre-training; the demo benchmark and
the one-shot prompt candidates are drawn from held-out pairs only. The sum is written most significant digit
first, which makes the carries hard for a 2-layer model (the reverse order is learnt perfectly, leaving no gap).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM

from emtune.data.formats import encode_prompt
from emtune.fsutil import atomic_dir, atomic_write_json, check_output
from emtune.model.tiny import IM_END, IM_START, build_model, build_tokenizer

log = logging.getLogger(__name__)

OPERANDS = range(100, 1000)
HOLDOUT_MODULUS = 16  # one pair in 16 is held out of pre-training
# The shipped build of `write_tiny_math(TINY_MATH_DIR)` (`emtune tiny-model --task arith`): weights are shipped
# rather than trained on first use, so every machine starts EM from the same model whatever its torch version or
# CPU (their kernels round differently, and a chaotic pre-training run amplifies that).
TINY_MATH_DIR = Path(__file__).parent / "weights" / "tiny-math"
ONE_SHOT_FILE = "one_shot.json"
RECIPE_FILE = "recipe.json"
# The format of every prompt the model sees: the tokenizer's chat template, no system prompt (the model is too
# small to spend pre-training on a long system prompt: the demo's config sets this format for train and eval).
PROMPT_FORMAT = "chat"


def problem(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def solution(a: int, b: int) -> str:
    """The assistant's answer: the boxed sum alone (a worked line would make pre-training too slow for a CPU)."""
    return f"\\boxed{{{a + b}}}"


def is_held_out(a: int, b: int) -> bool:
    digest = hashlib.sha256(f"{a}+{b}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % HOLDOUT_MODULUS == 0


def held_out_pairs(count: int, seed: int, skip: int = 0) -> list[tuple[int, int]]:
    """`count` distinct held-out pairs in a seeded order, after the first `skip` of that order."""
    pairs = [(a, b) for a in OPERANDS for b in OPERANDS if is_held_out(a, b)]
    random.Random(seed).shuffle(pairs)
    return pairs[skip : skip + count]


def benchmark_rows(count: int, seed: int) -> list[dict[str, str]]:
    """The demo benchmark: held-out problems with their gold answers."""
    return [
        {"id": f"demo-add-{index}", "problem": problem(a, b), "answer": str(a + b)}
        for index, (a, b) in enumerate(held_out_pairs(count, seed))
    ]


def _training_pairs(rng: random.Random) -> Iterator[tuple[int, int]]:
    while True:
        a, b = rng.choice(OPERANDS), rng.choice(OPERANDS)
        if not is_held_out(a, b):
            yield a, b


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the shipped weights."""

    seed: int = 0
    vocab_size: int = 400
    batch_size: int = 128
    learning_rate: float = 2e-3
    max_steps: int = 3000
    eval_every: int = 100
    # Stop at the first evaluation where greedy accuracy reaches this: the model knows, not yet confidently (a few
    # hundred steps later it is sure of nearly every answer and sampling matches greedy).
    target_greedy: float = 0.75
    validation_items: int = 128
    benchmark_items: int = 400
    benchmark_seed: int = 14
    one_shot_candidates: int = 48
    one_shot_samples: int = 64


def _tokenizer_corpus(seed: int) -> Iterator[str]:
    """Conversations as the chat template renders them, so BPE merges the template's words into single tokens."""
    rng = random.Random(seed)
    pairs = _training_pairs(rng)
    for _ in range(2000):
        a, b = next(pairs)
        yield f"{IM_START}user\n{problem(a, b)}{IM_END}\n{IM_START}assistant\n{solution(a, b)}{IM_END}\n"


def _batch(pairs: list[tuple[int, int]], tokenizer: PreTrainedTokenizerBase) -> dict[str, torch.Tensor]:
    """Right-padded prompt + solution + EOS; the loss covers the solution and EOS only."""
    rows, labels = [], []
    for a, b in pairs:
        prompt = encode_prompt(problem(a, b), PROMPT_FORMAT, tokenizer)
        answer = [*tokenizer(solution(a, b), add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        rows.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([r + [-100] * (width - len(r)) for r in labels]),
    }


@torch.no_grad()
def pass_rates(
    model: Qwen2ForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[tuple[int, int]],
    samples: int,
    temperature: float,
    seed: int,
) -> list[float]:
    """Fraction of `samples` completions per problem whose boxed answer is the sum (greedy: temperature 0)."""
    model.eval()
    torch.manual_seed(seed)
    prompts = [encode_prompt(problem(a, b), PROMPT_FORMAT, tokenizer) for a, b in pairs]
    # Every prompt has the same length (3-digit operands, one token per digit), so no padding is needed.
    inputs = torch.tensor([p for p in prompts for _ in range(samples)])
    out = model.generate(
        inputs,
        attention_mask=torch.ones_like(inputs),
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None,
        top_p=None,
        top_k=None,
        max_new_tokens=24,
        pad_token_id=tokenizer.pad_token_id,
    )
    texts = tokenizer.batch_decode(out[:, inputs.shape[1] :], skip_special_tokens=True)
    golds = [f"\\boxed{{{a + b}}}" for a, b in pairs for _ in range(samples)]
    correct = [text.rstrip().endswith(gold) for text, gold in zip(texts, golds, strict=True)]
    model.train()
    return [sum(correct[i * samples : (i + 1) * samples]) / samples for i in range(len(pairs))]


def pretrain(recipe: Recipe) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerBase, list[dict[str, Any]]]:
    """Train until greedy validation accuracy reaches `recipe.target_greedy`; returns the model and its log.

    One CPU thread: how a kernel splits a reduction over threads changes its rounding, and the run amplifies it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _pretrain(recipe)
    finally:
        torch.set_num_threads(threads)


def _pretrain(recipe: Recipe) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerBase, list[dict[str, Any]]]:
    tokenizer = build_tokenizer(recipe.vocab_size, corpus=_tokenizer_corpus(recipe.seed))
    model = build_model(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=recipe.seed)
    # Validation pairs come after the benchmark's in the held-out order, so they never overlap it.
    validation = held_out_pairs(recipe.validation_items, recipe.benchmark_seed, skip=recipe.benchmark_items)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.0)
    rng = random.Random(recipe.seed)
    pairs = _training_pairs(rng)
    torch.manual_seed(recipe.seed)
    history: list[dict[str, Any]] = []
    model.train()
    for step in range(1, recipe.max_steps + 1):
        batch = _batch([next(pairs) for _ in range(recipe.batch_size)], tokenizer)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % recipe.eval_every == 0:
            greedy = _mean(pass_rates(model, tokenizer, validation, 1, 0.0, recipe.seed))
            sampled = _mean(pass_rates(model, tokenizer, validation, 4, 1.0, recipe.seed))
            history.append({"step": step, "loss": loss.item(), "greedy": greedy, "sampled_t1": sampled})
            log.info("step %d loss %.4f greedy %.3f sampled(T=1) %.3f", step, loss.item(), greedy, sampled)
            if greedy >= recipe.target_greedy:
                break
    model.eval()
    return model, tokenizer, history


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def choose_one_shot(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase, recipe: Recipe) -> dict[str, Any]:
    """The rule: among held-out candidates outside the benchmark and validation set, the problem whose sampled
    pass rate at temperature 1 is closest to 0.5 (the largest pass-rate variance p(1-p), as the paper picks
    its prompt); ties go to the earlier candidate."""
    skip = recipe.benchmark_items + recipe.validation_items
    candidates = held_out_pairs(recipe.one_shot_candidates, recipe.benchmark_seed, skip=skip)
    rates = pass_rates(model, tokenizer, candidates, recipe.one_shot_samples, 1.0, recipe.seed)
    index = min(range(len(candidates)), key=lambda i: (abs(rates[i] - 0.5), i))
    a, b = candidates[index]
    return {
        "problem": problem(a, b),
        "answer": str(a + b),
        "pass_rate_t1": rates[index],
        "rule": "held-out candidate with sampled (T=1) pass rate closest to 0.5",
        "candidates": [
            {"problem": problem(*pair), "pass_rate_t1": rate} for pair, rate in zip(candidates, rates, strict=True)
        ],
    }


def write_tiny_math(out_dir: Path, recipe: Recipe | None = None, *, overwrite: bool = False) -> Path:
    """Pre-train the maths model and write it, its tokenizer, the recipe and the one-shot prompt to `out_dir`."""
    check_output(out_dir, overwrite=overwrite)  # before minutes of pre-training
    recipe = recipe or Recipe()
    model, tokenizer, history = pretrain(recipe)
    one_shot = choose_one_shot(model, tokenizer, recipe)
    with atomic_dir(Path(out_dir), "tiny-model", overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / RECIPE_FILE, {"recipe": asdict(recipe), "history": history})
        atomic_write_json(tmp / ONE_SHOT_FILE, one_shot)
    return Path(out_dir)


def one_shot_problem(model_dir: Path = TINY_MATH_DIR) -> str:
    """The one-shot training problem the build chose for this model (see `choose_one_shot`)."""
    return str(json.loads((Path(model_dir) / ONE_SHOT_FILE).read_text(encoding="utf-8"))["problem"])
