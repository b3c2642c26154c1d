"""math-verify grading: answer extraction, equivalent and non-equivalent forms, the timeout path, re-grading."""

from __future__ import annotations

import json

import pytest

from emtune.errors import DataError
from emtune.evaluate.grading import Grader, grade_completion, last_boxed
from emtune.evaluate.regrade import regrade


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout_s=5.0, workers=2) as pool:
        yield pool


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"first \boxed{1} then \boxed{ 2 }", "2"),
        (r"\boxed{\left(1, \sqrt{2}\right)}", r"\left(1, \sqrt{2}\right)"),
        (r"nested \boxed{\text{(B)} \{x\}}", r"\text{(B)} \{x\}"),
        (r"$\boxed 7$", "7"),
        (r"\fbox{3}", "3"),
        ("no box here", None),
        (r"unclosed \boxed{12", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


EQUIVALENT = [
    (r"\frac12", "0.5"),
    (r"\frac12", "1/2"),
    (r"3\sqrt{2}", r"\sqrt{18}"),
    (r"10\%", "10"),
    ("(x+1)^2", "x^2+2x+1"),
    (r"\text{(B)}", "B"),
    ("(1,2)", "(1, 2)"),
    ("[0,1)", "[0, 1)"),
    (r"30^\circ", "30"),
    (r"5\text{ cm}", "5"),
    ("27.0", "27"),
    (r"\infty", r"\infty"),
]
NOT_EQUIVALENT = [
    (r"\frac12", "0.6"),
    ("(1,2)", "(2,1)"),
    ("[0,1)", "(0,1)"),
    (r"\text{(B)}", "C"),
    ("x^2+2x+1", "x^2+1"),
    (r"3\sqrt{2}", r"2\sqrt{3}"),
]


def test_equivalent_and_non_equivalent_forms(grader):
    cases = EQUIVALENT + NOT_EQUIVALENT
    grades = grader.grade([(f"The answer is $\\boxed{{{pred}}}$.", gold) for gold, pred in cases])
    verdicts = {(gold, pred): grade.correct for (gold, pred), grade in zip(cases, grades, strict=True)}
    assert verdicts == {case: case in EQUIVALENT for case in cases}
    assert [grade.extracted for grade in grades] == [pred for _, pred in cases]
    assert not any(grade.timed_out for grade in grades)


def test_last_box_wins_and_fallback_extraction(grader):
    grades = grader.grade(
        [
            (r"maybe \boxed{3}, no: \boxed{4}", "4"),
            (r"maybe \boxed{4}, no: \boxed{3}", "4"),
            ("No box, but the final answer is $\\frac{3}{4}$.", "0.75"),
            ("nothing to see", "1"),
        ]
    )
    assert [g.correct for g in grades] == [True, False, True, False]
    assert grades[2].extracted is not None


def test_pathological_expression_times_out_and_counts_wrong():
    with Grader(timeout_s=1.0, workers=1) as pool:
        slow, fine = pool.grade([(r"\boxed{9^{9^{9^{9}}}}", "5"), (r"\boxed{5}", "5")])
    assert slow.timed_out and not slow.correct
    assert fine.correct and not fine.timed_out


def test_grade_completion_in_process():
    assert grade_completion(r"\boxed{\dfrac{2}{4}}", "1/2", timeout_s=5).correct


def test_regrade_writes_every_line_back_in_order(tmp_path):
    samples = tmp_path / "samples.jsonl"
    rows = [
        {"id": "a", "completion": r"\boxed{2}", "gold": "2", "correct": False, "extra": 1},
        {"id": "b", "completion": r"\boxed{3}", "gold": 4},
        {"id": "c", "completion": r"\boxed{\frac{1}{2}}", "gold": "0.5"},
    ]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "graded.jsonl"
    summary = regrade(samples, out, timeout_s=5, workers=1)
    assert summary == {"items": 3, "correct": 2, "accuracy": pytest.approx(2 / 3), "timeouts": 0}
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [w["id"] for w in written] == ["a", "b", "c"]
    assert [w["correct"] for w in written] == [True, False, True]
    assert [w["extracted"] for w in written] == ["2", "3", r"\frac{1}{2}"]
    assert written[0]["extra"] == 1


def test_regrade_rejects_lines_without_the_fields(tmp_path):
    samples = tmp_path / "bad.jsonl"
    samples.write_text('{"completion": "x", "gold": "1"}\n{"completion": "y"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2 needs the fields"):
        regrade(samples)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_regrade_of_an_empty_file_is_an_error_and_writes_nothing(tmp_path, text):
    samples, out = tmp_path / "empty.jsonl", tmp_path / "graded.jsonl"
    samples.write_text(text)
    with pytest.raises(DataError, match=r"empty.jsonl' holds no samples"):
        regrade(samples, out)
    assert not out.exists()
