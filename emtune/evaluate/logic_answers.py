"""Knights-and-Knaves answers: the knight/knave assignment a completion states, read per person.

The gold names every person ('Alice is a knight, Bob is a knave'). In the completion, the part after its last
'conclusion' (the research prompt's marker) is read when there is one, else the whole text; for each person the
last statement of their kind counts ('Alice is a knight', 'Bob is not a knight', 'Bob must be a knave',
'Alice: knight'), so reasoning that tries both cases before concluding is read by its conclusion. An answer is
right only when every person is named and every one is right.
"""

from __future__ import annotations

import re

_GOLD = re.compile(r"([A-Za-z][\w'-]*) is a (knight|knave)")
_MARKER = re.compile(r"conclusion", re.IGNORECASE)
_VERB = r"(?:is|are|was|must be|would be|has to be|is definitely|is therefore|is clearly)"


def gold_assignment(gold: str) -> dict[str, bool]:
    """{'Alice': True, 'Bob': False} from a gold 'Alice is a knight, Bob is a knave'."""
    found = {name: kind == "knight" for name, kind in _GOLD.findall(gold)}
    if not found:
        raise ValueError(f"a Knights-and-Knaves gold names no one: {gold!r}")
    return found


def _stated(text: str, name: str) -> bool | None:
    """The kind `text` last gives `name` (True: knight), None when it gives none."""
    said = rf"\b{re.escape(name)}\b\W{{0,3}}\s*(?:{_VERB}\s+(not\s+)?(?:a\s+)?|[:=\-–—]\s*(?:a\s+)?)(knight|knave)s?\b"
    matches = list(re.finditer(said, text, re.IGNORECASE))
    if not matches:
        return None
    negated, kind = matches[-1].group(1), matches[-1].group(2).lower()
    return (kind == "knight") != bool(negated)


def read_assignment(completion: str, names: list[str]) -> dict[str, bool]:
    """The kind stated for each of `names` that the completion gives one (see the module doc)."""
    markers = list(_MARKER.finditer(completion))
    text = completion[markers[-1].end() :] if markers else completion
    stated = {name: _stated(text, name) for name in names}
    return {name: kind for name, kind in stated.items() if kind is not None}


def describe(assignment: dict[str, bool]) -> str:
    return ", ".join(f"{name} is {'a knight' if knight else 'a knave'}" for name, knight in assignment.items())


def grade_assignment(completion: str, gold: str) -> tuple[str | None, bool]:
    """(what was read, as text or None; whether every person's kind is right)."""
    expected = gold_assignment(gold)
    stated = read_assignment(completion, list(expected))
    return (describe(stated) if stated else None), stated == expected
