"""No command deletes what the user did not ask it to delete.

Every folder-writing command refuses an existing non-empty folder it did not write (even with --overwrite), an
output that is, holds or lies inside one of its inputs, and replaces its own earlier output only on
--overwrite. Each refusal test checks the user's files byte for byte afterwards: without the guard the
command would have replaced the folder, so these tests fail when the guard is removed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emtune.errors import OutputError
from emtune.fsutil import OUTPUT_MARKER, atomic_dir, check_output

PROMPTS = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "prompts" / "problems.jsonl"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def mine(tmp_path: Path) -> Path:
    """A user's folder emtune never wrote."""
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return folder


def refused(result, *fragments: str) -> None:
    assert result.code == 2, (result.out, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.err and len(errors) == 1, result.err
    for fragment in fragments:
        assert fragment in errors[0], result.err


# ----------------------------------------------------------------------------------------- the helper itself
def test_atomic_dir_replaces_only_its_own_output_and_only_when_asked(tmp_path: Path, mine: Path) -> None:
    before = snapshot(mine)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="mine"), atomic_dir(mine, "test", overwrite=overwrite) as tmp:
            (tmp / "new.txt").write_text("new")
        assert snapshot(mine) == before
    out = tmp_path / "out"
    with atomic_dir(out, "test") as tmp:
        (tmp / "a.txt").write_text("first")
    assert json.loads((out / OUTPUT_MARKER).read_text())["command"] == "test"
    with pytest.raises(OutputError, match="--overwrite"), atomic_dir(out, "test") as tmp:
        (tmp / "a.txt").write_text("second")
    assert (out / "a.txt").read_text() == "first"
    with atomic_dir(out, "test", overwrite=True) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "b.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial or old folder left


def test_a_failing_block_leaves_the_previous_output_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_dir(out, "test") as tmp:
        (tmp / "a.txt").write_text("first")
    before = snapshot(out)
    with pytest.raises(RuntimeError), atomic_dir(out, "test", overwrite=True) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("boom")
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_outputs_overlapping_inputs_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    source = data / "x.jsonl"
    source.write_text("{}\n")
    with pytest.raises(OutputError, match="holds the input"):
        check_output(data, [source], overwrite=True)
    with pytest.raises(OutputError, match="is the input"):
        check_output(data, [data], overwrite=True)
    with pytest.raises(OutputError, match="lies inside the input"):
        check_output(data / "out", [data])
    with pytest.raises(OutputError, match="is a file"):
        check_output(source)
    check_output(tmp_path / "elsewhere", [source, data])  # no overlap: fine
    check_output(data / "out", [source])  # beside a file input: fine


# ------------------------------------------------------------------------------------------- per command
def test_prep_never_deletes_its_source_or_a_users_folder(emtune_cli, tmp_path: Path, mine: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(PROMPTS, data / "x.jsonl")
    before, mine_before = snapshot(data), snapshot(mine)
    for extra in ([], ["--overwrite"]):
        refused(
            emtune_cli("prep", "--source", str(data / "x.jsonl"), "--index", "0", "--out", str(data), *extra),
            "holds the input",
        )
        refused(
            emtune_cli("prep", "--source", str(data / "x.jsonl"), "--index", "0", "--out", str(mine), *extra), "mine"
        )
    assert snapshot(data) == before and snapshot(mine) == mine_before

    out = tmp_path / "prompts"
    args = ("prep", "--source", str(data / "x.jsonl"), "--out", str(out))
    assert emtune_cli(*args, "--index", "0").code == 0
    first = snapshot(out)
    refused(emtune_cli(*args, "--index", "1"), "--overwrite")
    assert snapshot(out) == first
    assert emtune_cli(*args, "--index", "1", "--overwrite").code == 0
    assert snapshot(out)["prompts.parquet"] != first["prompts.parquet"]


def write_eval_results(root: Path) -> Path:
    for step, accuracy in ((0, 0.25), (2, 0.5)):
        folder = root / f"step-{step}" / "demo-arith"
        folder.mkdir(parents=True)
        record = {"label": f"step-{step}", "step": step, "benchmark": "demo-arith", "accuracy": accuracy}
        (folder / "metrics.json").write_text(json.dumps(record))
    return root


def test_report_never_deletes_the_results_it_reads(emtune_cli, tmp_path: Path, mine: Path) -> None:
    ev = write_eval_results(tmp_path / "ev")
    before, mine_before = snapshot(ev), snapshot(mine)
    for extra in ([], ["--overwrite"]):
        refused(emtune_cli("report", str(ev), "--out", str(ev), *extra), "holds the input")
        refused(emtune_cli("report", str(ev), "--out", str(ev / "step-0"), *extra), "holds the input")
        refused(emtune_cli("report", str(ev), "--out", str(mine), *extra), "mine")
    assert snapshot(ev) == before and snapshot(mine) == mine_before

    assert emtune_cli("report", str(ev)).code == 0  # the default, <input>/report, holds none of its inputs
    refused(emtune_cli("report", str(ev)), "--overwrite")
    assert emtune_cli("report", str(ev), "--overwrite").code == 0
    assert {k: v for k, v in snapshot(ev).items() if not k.startswith("report")} == before


@pytest.fixture
def model_dir(tmp_path: Path, tiny_model_dir: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_report_logits_never_writes_over_its_model_or_prompts(
    emtune_cli, tmp_path: Path, mine: Path, model_dir: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is 1+1?\n")
    before, mine_before = snapshot(model_dir), snapshot(mine)
    base = ("report", "logits", "--model", str(model_dir), "--prompts", str(prompts))
    for extra in ([], ["--overwrite"]):
        refused(emtune_cli(*base, "--out", str(model_dir), *extra), "is the input")
        refused(emtune_cli(*base, "--out", str(model_dir / "logits"), *extra), "lies inside the input")
        refused(emtune_cli(*base, "--out", str(mine), *extra), "mine")
        refused(emtune_cli(*base, "--out", str(prompts), *extra), "is a file")
    assert snapshot(model_dir) == before and snapshot(mine) == mine_before
    assert prompts.read_text() == "What is 1+1?\n"


def test_eval_never_writes_over_its_model_or_a_users_folder(
    emtune_cli, tmp_path: Path, mine: Path, model_dir: Path
) -> None:
    before, mine_before = snapshot(model_dir), snapshot(mine)
    base = ("eval", "--model", str(model_dir), "--benchmarks", "demo-arith", "--limit", "1")
    for extra in ([], ["--overwrite"]):
        refused(emtune_cli(*base, "--out", str(model_dir), *extra), "is the input")
        refused(emtune_cli(*base, "--out", str(model_dir / "eval"), *extra), "lies inside the input")
        refused(emtune_cli(*base, "--out", str(mine), *extra), "mine")
    assert snapshot(model_dir) == before and snapshot(mine) == mine_before


def test_tiny_model_never_replaces_a_users_folder(emtune_cli, mine: Path) -> None:
    before = snapshot(mine)
    refused(emtune_cli("tiny-model", str(mine)), "mine", "--overwrite")
    refused(emtune_cli("tiny-model", str(mine), "--overwrite"), "not written by emtune")
    assert snapshot(mine) == before


def test_ckpt_pull_never_replaces_a_users_folder_or_writes_into_its_store(
    emtune_cli, tmp_path: Path, mine: Path
) -> None:
    step = tmp_path / "step-1"
    step.mkdir()
    (step / "model.safetensors").write_bytes(b"weights")
    store = tmp_path / "store"
    assert emtune_cli("ckpt", "push", str(step), store.as_uri()).code == 0
    store_before, mine_before = snapshot(store), snapshot(mine)
    uri = f"{store.as_uri()}/step-1"
    for extra in ([], ["--overwrite"]):
        refused(emtune_cli("ckpt", "pull", uri, str(mine), *extra), "mine")
        refused(emtune_cli("ckpt", "pull", uri, str(store / "copy"), *extra), "lies inside the input")
        refused(emtune_cli("ckpt", "pull", uri, str(step / "model.safetensors"), *extra), "is a file")
    assert snapshot(store) == store_before and snapshot(mine) == mine_before

    pulled = tmp_path / "pulled"
    assert emtune_cli("ckpt", "pull", uri, str(pulled)).code == 0
    refused(emtune_cli("ckpt", "pull", uri, str(pulled)), "--overwrite")
    assert emtune_cli("ckpt", "pull", uri, str(pulled), "--overwrite").code == 0
    assert (pulled / "model.safetensors").read_bytes() == b"weights"
    # The marker says who wrote the folder; pushing the pulled copy sends the model files only.
    assert emtune_cli("ckpt", "push", str(pulled), f"{store.as_uri()}/step-1").out.count("already complete") == 1


def test_grade_never_writes_over_its_samples(emtune_cli, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"completion": "\\boxed{2}", "gold": "2"}) + "\n")
    before = samples.read_bytes()
    refused(emtune_cli("grade", str(samples), "--out", str(samples)), "samples file itself")
    assert samples.read_bytes() == before


def test_eval_replaces_its_own_earlier_results_only_on_overwrite(emtune_cli, tmp_path: Path, model_dir: Path) -> None:
    out = tmp_path / "eval"
    args = (
        "eval",
        "--model",
        str(model_dir),
        "--benchmarks",
        "demo-arith",
        "--limit",
        "1",
        "--backend",
        "hf",
        "--max-new-tokens",
        "4",
        "--set",
        "eval.grading_workers=1",
        "--out",
        str(out),
    )
    assert emtune_cli(*args).code == 0
    (out / "note.txt").write_text("left by an earlier run")
    refused(emtune_cli(*args), "--overwrite")
    assert (out / "note.txt").is_file()
    assert emtune_cli(*args, "--overwrite").code == 0
    assert not (out / "note.txt").exists() and (out / OUTPUT_MARKER).is_file()
    assert json.loads((out / "model" / "demo-arith" / "metrics.json").read_text())["benchmark_items"] == 8
