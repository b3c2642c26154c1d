"""Careless and malformed input, by class, through the real `emtune` entry point.

Every case must: exit 2, print exactly one `error:` line naming what was wrong, show no traceback, leave nothing
behind in the working folder (no half-written output), and come back in bounded time (no retry loop, no hang).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
PROMPTS = FIXTURES / "prompts" / "problems.jsonl"
# Far above what any of these cases takes; a case that waits on a retry loop or a network timeout exceeds it.
BOUND_S = 60

# Files the cases read, made in the working folder before each case (paths below are relative to it).
SETUP: dict[str, bytes | str | None] = {
    "binary.jsonl": bytes(range(256)) * 4,
    "binary.yaml": b"\x00\xff\xfe" * 100,
    "list.yaml": "- a\n- b\n",
    "notes.txt": "a line\n",
    "garbage.jsonl": "not json\n",
    "samples.jsonl": json.dumps({"completion": "\\boxed{2}", "gold": "2"}) + "\n",
    "a-folder": None,
    "no-config-model": None,
    "empty-store": None,
}

CASES = {
    # class config
    "config: missing file": (["train", "--config", "nope.yaml"], "nope.yaml"),
    "config: not a mapping": (["train", "--config", "list.yaml"], "list.yaml"),
    "config: binary file": (["train", "--config", "binary.yaml"], "binary.yaml"),
    "config: --set without =": (["prep", "--set", "train.learning_rate"], "train.learning_rate"),
    "config: --set unknown key": (["prep", "--set", "train.lerning_rate=1"], "lerning_rate"),
    "config: --set wrong type": (["prep", "--set", "train.learning_rate=fast"], "learning_rate"),
    # class data
    "data: missing source": (["prep", "--source", "nope.jsonl", "--out", "o"], "nope.jsonl"),
    "data: source is a folder": (["prep", "--source", "a-folder", "--out", "o"], "a-folder"),
    "data: source is binary": (["prep", "--source", "binary.jsonl", "--out", "o"], "binary.jsonl"),
    "data: unknown suffix": (["prep", "--source", "notes.txt", "--out", "o"], "notes.txt"),
    "data: not JSON lines": (["prep", "--source", "garbage.jsonl", "--out", "o"], "garbage.jsonl"),
    "data: mistyped field": (["prep", "--source", str(PROMPTS), "--field", "problme", "--out", "o"], "problme"),
    "data: index out of range": (["prep", "--source", str(PROMPTS), "--index", "99", "--out", "o"], "99"),
    "data: truncated jsonl": (
        ["prep", "--source", str(FIXTURES / "bad" / "truncated.jsonl"), "--out", "o"],
        "truncated.jsonl",
    ),
    # class model
    "model: missing folder": (["eval", "--model", "./nope", "--benchmarks", "demo-arith", "--out", "o"], "nope"),
    "model: folder without config.json": (
        ["eval", "--model", "no-config-model", "--benchmarks", "demo-arith", "--out", "o"],
        "config.json",
    ),
    "model: unknown builtin": (
        ["eval", "--model", "builtin:huge", "--benchmarks", "demo-arith", "--out", "o"],
        "builtin:huge",
    ),
    # class store
    "store: pull from an empty store": (["ckpt", "pull", "empty-store", "o"], "empty-store"),
    "store: push a missing folder": (["ckpt", "push", "nope", "file:///tmp/emtune-never", "--step", "1"], "nope"),
    "store: verify a missing step": (["ckpt", "verify", "empty-store/step-3"], "step 3"),
    # class eval
    "eval: unknown benchmark": (["eval", "--model", "builtin:tiny", "--benchmarks", "nope", "--out", "o"], "nope"),
    "eval: unknown backend": (["eval", "--model", "builtin:tiny", "--backend", "tpu", "--out", "o"], "tpu"),
    # class grade
    "grade: missing file": (["grade", "nope.jsonl"], "nope.jsonl"),
    "grade: binary file": (["grade", "binary.jsonl"], "binary.jsonl"),
    "grade: not JSON lines": (["grade", "garbage.jsonl"], "garbage.jsonl"),
    "grade: --out is a folder": (["grade", "samples.jsonl", "--out", "a-folder"], "a-folder"),
    # class report
    "report: missing input": (["report", "nope", "--out", "o"], "nope"),
    "report: no results in input": (["report", "a-folder", "--out", "o"], "a-folder"),
    "report logits: binary prompts": (
        ["report", "logits", "--model", "builtin:tiny", "--prompts", "binary.jsonl", "--out", "o"],
        "binary.jsonl",
    ),
    "report logits: missing prompts": (
        ["report", "logits", "--model", "builtin:tiny", "--prompts", "nope.txt", "--out", "o"],
        "nope.txt",
    ),
    # class pipeline
    "pipeline: run without --local": (["pipeline", "run"], "--local"),
    "pipeline: run --local, missing source": (
        ["pipeline", "run", "--local", "--set", "data.source=nope.jsonl", "--runs-root", "o"],
        "nope.jsonl",
    ),
    "pipeline: submit to an unreachable host": (
        ["pipeline", "submit", "--host", "http://127.0.0.1:9", "--set", "store.uri=s3://b/p"],
        "127.0.0.1:9",
    ),
    "pipeline: submit with an invalid cron": (
        ["pipeline", "submit", "--dry-run", "--recurring", "every day", "--set", "store.uri=s3://b/p"],
        "every day",
    ),
    # class output (path mistakes)
    "output: --out is a file": (
        ["prep", "--source", str(PROMPTS), "--index", "0", "--out", "notes.txt"],
        "notes.txt",
    ),
    "output: a parent of --out is a file": (
        ["prep", "--source", str(PROMPTS), "--index", "0", "--out", "notes.txt/prompts"],
        "notes.txt",
    ),
    "output: train --out is a file": (["train", "--prompts", "builtin:demo", "--out", "notes.txt"], "notes.txt"),
    "output: a parent of train --out is a file": (
        ["train", "--prompts", "builtin:demo", "--out", "notes.txt/run"],
        "notes.txt",
    ),
    "output: tiny-model into a file": (["tiny-model", "notes.txt"], "notes.txt"),
    "output: ckpt pull into a file": (["ckpt", "pull", "empty-store", "notes.txt"], "notes.txt"),
}


def make_inputs(root: Path) -> None:
    for name, content in SETUP.items():
        path = root / name
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (root / "no-config-model" / "weights.bin").write_bytes(b"\x00" * 16)


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("args", "named"), list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_and_exit_2(
    emtune_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], named: str
) -> None:
    monkeypatch.chdir(tmp_path)
    make_inputs(tmp_path)
    before = listing(tmp_path)
    result = emtune_cli(*args)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err + result.out
    assert len(errors) == 1 and len(errors[0]) < 600, result.err  # one line; an unknown key lists the known ones
    assert named in errors[0], result.err
    assert listing(tmp_path) == before and not (tmp_path / "o").exists()  # nothing written, nothing removed
    assert result.seconds < BOUND_S


def test_debug_shows_the_traceback(emtune_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    from emtune.errors import DataError

    with pytest.raises(DataError, match=r"nope\.jsonl"):
        emtune_cli("--debug", "prep", "--source", "nope.jsonl")


def test_a_bug_still_shows_its_traceback(emtune_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only user errors become one line: anything else (here a KeyError from inside prep) propagates."""
    import emtune.data.prep

    def broken(*_: object, **__: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(emtune.data.prep, "run", broken)
    with pytest.raises(KeyError):
        emtune_cli("prep", "--source", str(PROMPTS))


def test_the_console_script_prints_one_line(tmp_path: Path) -> None:
    """The same through a real process: what a user's shell sees."""
    import subprocess
    import sys

    (tmp_path / "samples.jsonl").write_bytes(bytes(range(256)))
    done = subprocess.run(
        [sys.executable, "-m", "emtune", "grade", "samples.jsonl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 2 and done.stderr.startswith("error: samples file 'samples.jsonl'"), done.stderr
    assert json.dumps(done.stderr).count("\\n") == 1
