"""Knights-and-Knaves puzzles: generated from a seed, each proved by exhaustive search to have exactly one
solution, for 2 to 8 people. Knights always tell the truth, knaves always lie; every person says one thing.

A statement is plain data (JSON-able nested lists), so a puzzle file carries its statements and anyone can
re-check its uniqueness: ["is", person, knight?], ["not", s], and ["and" | "or" | "iff" | "implies", s, t].
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emtune.errors import DataError

MIN_PEOPLE, MAX_PEOPLE = 2, 8
NAMES = (
    "Alice",
    "Bob",
    "Chloe",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Henry",
    "Isla",
    "Jack",
    "Kate",
    "Liam",
    "Mia",
    "Noah",
    "Olivia",
    "Peter",
    "Quinn",
    "Ruby",
    "Sam",
    "Tara",
)
_CONNECTIVES = ("and", "or", "iff", "implies")
_MAX_ATTEMPTS = 100_000

Statement = list[Any]
Assignment = tuple[bool, ...]  # per person, True for a knight


@dataclass(frozen=True)
class Puzzle:
    names: list[str]
    statements: list[Statement]  # statements[i] is what names[i] says

    def solutions(self) -> list[Assignment]:
        """Every assignment in which each knight's statement is true and each knave's false."""
        return [
            world
            for world in itertools.product((True, False), repeat=len(self.names))
            if all(world[speaker] == holds(statement, world) for speaker, statement in enumerate(self.statements))
        ]

    def question(self) -> str:
        pairs = zip(self.names, self.statements, strict=True)
        said = " ".join(f'{name} says: "{_sentence(self.names, statement)}."' for name, statement in pairs)
        return (
            "On an island live only knights, who always tell the truth, and knaves, who always lie. "
            f"You meet {len(self.names)} inhabitants: {_listing(self.names)}. {said} "
            "Who is a knight and who is a knave?"
        )


def holds(statement: Statement, world: Sequence[bool]) -> bool:
    op = statement[0]
    if op == "is":
        return world[statement[1]] == statement[2]
    if op == "not":
        return not holds(statement[1], world)
    left, right = holds(statement[1], world), holds(statement[2], world)
    return {"and": left and right, "or": left or right, "iff": left == right, "implies": not left or right}[op]


def _kind(knight: bool) -> str:
    return "a knight" if knight else "a knave"


def _sentence(names: Sequence[str], statement: Statement) -> str:
    text = _clause(names, statement)
    return text[0].upper() + text[1:]


def _clause(names: Sequence[str], statement: Statement) -> str:
    op = statement[0]
    if op == "is":
        return f"{names[statement[1]]} is {_kind(statement[2])}"
    if op == "not":
        inner = statement[1]
        return f"{names[inner[1]]} is not {_kind(inner[2])}"
    left, right = _clause(names, statement[1]), _clause(names, statement[2])
    return {
        "and": f"{left} and {right}",
        "or": f"{left} or {right}",
        "iff": f"{left} if and only if {right}",
        "implies": f"if {left}, then {right}",
    }[op]


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}"


def _atom(rng: random.Random, people: int) -> Statement:
    atom: Statement = ["is", rng.randrange(people), rng.random() < 0.5]
    return ["not", atom] if rng.random() < 0.15 else atom


def _subject(atom: Statement) -> int:
    return int(atom[1][1] if atom[0] == "not" else atom[1])


def _statement(rng: random.Random, people: int) -> Statement:
    if rng.random() < 0.35:
        return _atom(rng, people)
    left, right = _atom(rng, people), _atom(rng, people)
    while _subject(right) == _subject(left):
        right = _atom(rng, people)  # two clauses about one person would make a tautology or a contradiction
    return [rng.choice(_CONNECTIVES), left, right]


def generate(people: int, rng: random.Random) -> Puzzle:
    """A puzzle with exactly one solution; statements are drawn until the search finds just one."""
    if not MIN_PEOPLE <= people <= MAX_PEOPLE:
        raise DataError(f"Knights and Knaves puzzles have {MIN_PEOPLE} to {MAX_PEOPLE} people, not {people}")
    for _ in range(_MAX_ATTEMPTS):
        names = rng.sample(NAMES, people)
        puzzle = Puzzle(names, [_statement(rng, people) for _ in range(people)])
        if len(puzzle.solutions()) == 1:
            return puzzle
    raise RuntimeError(f"no uniquely solvable {people}-person puzzle in {_MAX_ATTEMPTS} attempts")  # pragma: no cover


def format_assignment(names: Sequence[str], world: Assignment) -> str:
    """The gold answer: 'Alice is a knight, Bob is a knave' (the grader reads the names from it)."""
    return ", ".join(f"{name} is {_kind(knight)}" for name, knight in zip(names, world, strict=True))


def puzzle_rows(people: int, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` distinct puzzles of `people` people; the same (people, count, seed) gives the same rows."""
    rng = random.Random(f"emtune-kk-{people}-{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rows) < count:
        puzzle = generate(people, rng)
        question = puzzle.question()
        if question in seen:
            continue
        seen.add(question)
        (solution,) = puzzle.solutions()
        gold = format_assignment(puzzle.names, solution)
        rows.append(
            {
                "id": f"kk-{people}-{len(rows)}",
                "question": question,
                "names": puzzle.names,
                "statements": puzzle.statements,
                "solution": gold,
            }
        )
    return rows
