"""Knights-and-Knaves benchmark files: `<out>/kk-<n>.jsonl` puzzles and the `kk-<n>.yaml` spec beside each, as
`emtune benchmarks kk` writes them and as the built-ins ship (seed 0, 100 puzzles per size)."""

from __future__ import annotations

import json
from pathlib import Path

from emtune.data.knights import puzzle_rows
from emtune.fsutil import atomic_write_text

KK_PROMPT = (
    "{question}\n\nThink it through, then finish with a line 'CONCLUSION:' followed by one statement per person, "
    "in the order they were introduced, such as '(1) Alice is a knight (2) Bob is a knave'."
)


def spec_text(people: int, count: int, seed: int) -> str:
    return (
        f"# Knights and Knaves with {people} people: {count} puzzles from `emtune benchmarks kk --people {people}"
        f" --count {count} --seed {seed}`,\n# each proved to have exactly one solution. Greedy decoding, up to 3,072"
        " new tokens, as the research code's logic suite.\n"
        f"name: kk-{people}\nkind: logic\ndescription: Knights and Knaves, {people} people, {count} puzzles"
        f" (seed {seed})\nsource: kk-{people}.jsonl\ncount: {count}\nquestion_field: question\nanswer: solution\n"
        f"id_field: id\nprompt: {json.dumps(KK_PROMPT)}\nsampling:\n  temperature: 0.0\n  max_new_tokens: 3072\n"
    )


def write_kk_benchmarks(out: Path, people: list[int], count: int, seed: int) -> list[Path]:
    """Write the puzzles and spec of each size; returns the spec files."""
    out.mkdir(parents=True, exist_ok=True)
    specs = []
    for size in people:
        rows = puzzle_rows(size, count, seed)
        atomic_write_text(out / f"kk-{size}.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        atomic_write_text(out / f"kk-{size}.yaml", spec_text(size, count, seed))
        specs.append(out / f"kk-{size}.yaml")
    return specs
