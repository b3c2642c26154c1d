"""Benchmark rows as the Qwen2.5-Math harness reads them: questions stripped, and golds normalised so that
math-verify accepts the correct answer. The fixture holds the problematic rows of the real benchmark files
verbatim (minerva_math 38, 49, 72; olympiadbench 2, 96, 188; amc23 30) beside one clean row each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emtune.data.benchmarks import load_benchmark
from emtune.data.fields import normalise_gold
from emtune.evaluate.grading import grade_completion

GOLD_CASES = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "gold_cases"

# (benchmark, row) -> the answer a correct completion boxes, and whether the file's gold, read verbatim, rejects it
CORRECT = {
    ("minerva_math", 0): (r"1.6", False),
    ("minerva_math", 1): (r"-\frac{1}{3}", True),  # gold '-1./3'
    ("minerva_math", 2): (r"-\frac{3}{2}", True),  # gold '-3./2'
    ("minerva_math", 3): (r"x_{0} \cos (\omega t)+\dot{x}_{0} \sin (\omega t) / \omega", True),  # an inner '+$ $'
    ("olympiadbench", 0): ("2", False),
    ("olympiadbench", 1): ("2^{1009}", False),
    ("olympiadbench", 2): ("(0,4]", True),  # gold 't(0,4]'
    ("olympiadbench", 3): ("17.5", True),  # gold '17.5%'
    ("amc23", 0): ("27", False),
    ("amc23", 1): ("50", False),
}


def _raw_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (GOLD_CASES / name / "test.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["minerva_math", "olympiadbench", "amc23"])
def test_questions_are_stripped_like_the_harness(name: str) -> None:
    benchmark = load_benchmark(name, str(GOLD_CASES), check_count=False)
    field = "problem" if name == "minerva_math" else "question"
    raw = [row[field] for row in _raw_rows(name)]
    assert [item.question for item in benchmark.items] == [question.strip() for question in raw]
    assert any(question != question.strip() for question in raw) or name == "minerva_math"


@pytest.mark.parametrize(("name", "row"), list(CORRECT))
def test_math_verify_accepts_the_correct_answer_against_the_normalised_gold(name: str, row: int) -> None:
    answer, verbatim_rejects = CORRECT[(name, row)]
    item = load_benchmark(name, str(GOLD_CASES), check_count=False).items[row]
    assert grade_completion(f"The answer is $\\boxed{{{answer}}}$.", item.gold, 10.0).correct, item.gold
    assert not grade_completion("The answer is $\\boxed{7}$.", item.gold, 10.0).correct
    if answer == "17.5":  # written with its percent sign, the answer counts as well
        assert grade_completion("The answer is $\\boxed{17.5\\%}$.", item.gold, 10.0).correct
    if verbatim_rejects:  # the normalisation is what makes the difference
        record = _raw_rows(name)[row]
        verbatim = record["final_answer"][0] if name == "olympiadbench" else record["solution"]
        if name == "minerva_math":
            from emtune.data.fields import last_boxed

            verbatim = last_boxed(verbatim) or ""
        assert not grade_completion(f"The answer is $\\boxed{{{answer}}}$.", verbatim, 10.0).correct, verbatim


@pytest.mark.parametrize(
    ("gold", "expected"),
    [
        ("-1./3", "-1/3"),
        ("2.5", "2.5"),
        ("17.5%", "17.5"),
        ("50\\%", "50"),
        ("t(0,4]", "(0,4]"),
        ("x \\in [1, 2)", "[1, 2)"),
        ("(0,4]", "(0,4]"),
        ("f(x)", "f(x)"),
        ("\\$8", "\\$8"),
        ("a+$ $b", "a+ b"),
        ("(1,2),(3,4)", "(1,2),(3,4)"),
    ],
)
def test_normalise_gold_changes_only_what_it_names(gold: str, expected: str) -> None:
    assert normalise_gold(gold) == expected
