"""Knights and Knaves: every generated puzzle has exactly one solution (re-proved here by an independent
brute-force reading of the stored statements), the shipped files are what the command writes, and the grader
is exact on known right and wrong answers, prose included."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emtune.cli import app
from emtune.data import knights
from emtune.data.benchmarks import BUILTIN_SPECS, load_benchmark
from emtune.data.kk_files import write_kk_benchmarks
from emtune.errors import DataError
from emtune.evaluate.grading import Grader
from emtune.evaluate.logic_answers import gold_assignment, grade_assignment


def _truth(statement: list, world: tuple[bool, ...]) -> bool:
    """A second evaluator of the statement format, written from its definition, not from knights.holds."""
    op, *args = statement
    if op == "is":
        return world[args[0]] is args[1]
    if op == "not":
        return not _truth(args[0], world)
    a, b = (_truth(arg, world) for arg in args)
    return {"and": a and b, "or": a or b, "iff": a is b, "implies": (not a) or b}[op]


@pytest.mark.parametrize("people", range(2, 9))
def test_every_shipped_puzzle_has_exactly_its_gold_as_solution(people: int) -> None:
    rows = [json.loads(line) for line in (BUILTIN_SPECS / f"kk-{people}.jsonl").read_text().splitlines()]
    assert len(rows) == 100 and len({row["question"] for row in rows}) == 100
    for row in rows:
        worlds = [
            world
            for world in itertools.product((True, False), repeat=people)
            if all(world[i] is _truth(s, world) for i, s in enumerate(row["statements"]))
        ]
        assert len(worlds) == 1, row["id"]
        assert row["solution"] == knights.format_assignment(row["names"], worlds[0])
        assert all(name in row["question"] for name in row["names"])


def test_the_shipped_files_are_what_the_command_writes(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["benchmarks", "kk", "--out", str(tmp_path), "--people", "2-8"])
    assert result.exit_code == 0, result.output
    for people in range(2, 9):
        for suffix in ("jsonl", "yaml"):
            name = f"kk-{people}.{suffix}"
            assert (tmp_path / name).read_bytes() == (BUILTIN_SPECS / name).read_bytes(), name


def test_a_seed_gives_the_same_puzzles_and_another_seed_others(tmp_path: Path) -> None:
    assert knights.puzzle_rows(5, 10, 1) == knights.puzzle_rows(5, 10, 1)
    assert knights.puzzle_rows(5, 10, 1) != knights.puzzle_rows(5, 10, 2)


def test_written_benchmarks_load_as_logic_benchmarks(tmp_path: Path) -> None:
    (spec,) = write_kk_benchmarks(tmp_path, [3], 7, 4)
    benchmark = load_benchmark(str(spec))
    assert benchmark.kind == "logic" and len(benchmark.items) == 7
    assert benchmark.spec is not None and benchmark.spec.sampling.temperature == 0
    assert "CONCLUSION:" in benchmark.spec.render(benchmark.items[0].question)


def test_sizes_outside_2_to_8_are_refused() -> None:
    with pytest.raises(DataError, match="2 to 8 people, not 9"):
        knights.generate(9, random.Random(0))
    result = subprocess.run(
        [sys.executable, "-m", "emtune", "benchmarks", "kk", "--out", "/nonexistent/x", "--people", "1-3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "--people '1-3'" in result.stderr and not Path("/nonexistent/x").exists()


GOLD = "Alice is a knight, Bob is a knave, Chloe is a knave"
RIGHT = [
    "Alice is a knight, Bob is a knave, Chloe is a knave.",
    "Let us assume Alice is a knave. Then Bob is a knight... contradiction. So Alice is a knight.\n"
    "CONCLUSION: (1) Alice is a knight (2) Bob is a knave (3) Chloe is a knave",
    "Bob is not a knight. Chloe must be a knave. Therefore Alice is definitely a knight.",
    "**Answer**\n- Alice: knight\n- Bob: knave\n- Chloe: knave\nI hope this helps!",
    "If Chloe were a knight, Bob would be a knight too. Hence Chloe is a knave, Bob is a knave and Alice is a knight.",
]
WRONG = [
    "Alice is a knight, Bob is a knave.",  # Chloe missing
    "Alice is a knight, Bob is a knight, Chloe is a knave.",
    "CONCLUSION: (1) Alice is a knave (2) Bob is a knave (3) Chloe is a knave",
    "Alice is a knight, Bob is a knave, Chloe is a knave... wait. CONCLUSION: Alice is a knight, Bob is a knight,"
    " Chloe is a knave",
    "I cannot tell who is who.",
    "",
]


def test_the_grader_is_exact_on_known_answers() -> None:
    with Grader() as grader:
        grades = grader.grade([(text, GOLD) for text in RIGHT + WRONG], kind="logic")
    assert [grade.correct for grade in grades] == [True] * len(RIGHT) + [False] * len(WRONG)
    assert grades[0].extracted == GOLD


def test_the_grader_is_exact_on_every_shipped_gold_and_its_flips() -> None:
    benchmark = load_benchmark("kk-4")
    for item in benchmark.items:
        expected = gold_assignment(item.gold)
        assert grade_assignment(f"Working... CONCLUSION: {item.gold}.", item.gold)[1]
        for flipped in expected:
            wrong = ", ".join(
                f"{name} is {'a knight' if knight != (name == flipped) else 'a knave'}"
                for name, knight in expected.items()
            )
            assert not grade_assignment(f"CONCLUSION: {wrong}", item.gold)[1]
