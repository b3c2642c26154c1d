"""`emtune prep`: sources in every file format, one-shot and multi-shot selection, the output contract,
and one clear error (with nothing left behind) for each kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emtune.config import RunConfig, load_config
from emtune.data import prep
from emtune.data.prompt_set import read_prompt_set
from emtune.errors import ConfigError, DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
PROMPTS = FIXTURES / "prompts"
BAD = FIXTURES / "bad"
UNIQUE_FIXTURE_PROBLEMS = [
    "What is $2+2$?",
    "What is $3 \\cdot 3$?",
    "Solve $x+1=5$.",
    "What is $10-7$?",
    "What is $12/4$?",
]


def config(source: Path | str, tmp_path: Path, **data: Any) -> RunConfig:
    overrides = {"data.source": str(source), "run.out_dir": str(tmp_path / "run")}
    overrides.update({f"data.{key}": value for key, value in data.items()})
    return load_config(None, overrides)


def prepared(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = pq.read_table(out / "prompts.parquet").to_pylist()
    return rows, json.loads((out / "manifest.json").read_text())


@pytest.fixture
def replicated_parquet(tmp_path: Path) -> Path:
    """The seed's one-shot layout: one problem repeated, nested reward_model / extra_info columns."""
    rows = [json.loads(line) for line in (PROMPTS / "replicated.jsonl").read_text().splitlines()]
    path = tmp_path / "replicated.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_one_shot_from_a_replicated_parquet_keeps_one_problem(replicated_parquet: Path, tmp_path: Path) -> None:
    cfg = config(replicated_parquet, tmp_path, index=0, answer_field="reward_model.ground_truth")
    out = prep.run(cfg)
    assert out == tmp_path / "run" / "data"
    rows, manifest = prepared(out)
    assert rows == [{"id": "0", "problem": "A square has side $3$. What is its area?", "answer": "9"}]
    assert manifest["rows_read"] == 12 and manifest["rows_unique"] == 1 and manifest["rows_written"] == 1
    assert manifest["mode"] == "one_shot" and manifest["selection"] == {"index": 0}
    assert manifest["source"] == str(replicated_parquet) and manifest["field"] == "problem"
    assert len(manifest["source_sha256"]) == 64 and manifest["prompt_format"] == "chat"
    assert {"emtune_version", "created_at"} <= set(manifest)
    assert prep.summary(manifest).startswith("12 rows → 1 unique problem → 1 prompt")


def test_output_schema_is_fixed_and_answer_nullable(tmp_path: Path) -> None:
    out = prep.run(config(PROMPTS / "questions.jsonl", tmp_path, field="question", mode="multi_shot"))
    table = pq.read_table(out / "prompts.parquet")
    assert table.schema == prep.PROMPTS_SCHEMA
    assert table.to_pylist() == [
        {"id": "0", "problem": "What is $6 \\cdot 7$?", "answer": None},
        {"id": "1", "problem": "What is $9-4$?", "answer": None},
    ]


def test_same_inputs_give_a_byte_identical_parquet(tmp_path: Path) -> None:
    cfg = config(PROMPTS / "problems.jsonl", tmp_path, mode="multi_shot", sample=3, seed=5)
    first = prep.run(cfg, out=tmp_path / "a") / "prompts.parquet"
    second = prep.run(cfg, out=tmp_path / "b") / "prompts.parquet"
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("name", ["problems.jsonl", "problems.json", "problems.csv"])
def test_every_file_format_gives_the_same_unique_problems(name: str, tmp_path: Path) -> None:
    rows, manifest = prepared(prep.run(config(PROMPTS / name, tmp_path, mode="multi_shot")))
    assert [row["problem"] for row in rows] == UNIQUE_FIXTURE_PROBLEMS
    assert [row["id"] for row in rows] == ["p1", "p2", "p3", "p4", "p5"]
    assert rows[1]["answer"] == "9"
    assert manifest["rows_read"] == 6 and manifest["rows_unique"] == 5 and manifest["selection"] == {"all": True}


def test_parquet_source_matches_jsonl(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (PROMPTS / "problems.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "problems.parquet")
    prepared_rows, _ = prepared(prep.run(config(tmp_path / "problems.parquet", tmp_path, mode="multi_shot")))
    assert [row["problem"] for row in prepared_rows] == UNIQUE_FIXTURE_PROBLEMS


@pytest.mark.parametrize(
    ("pick", "expected_id"), [({"index": 3}, "p3"), ({"id": "p4"}, "p4"), ({"text": "What is $12/4$?"}, "p5")]
)
def test_one_shot_picks_by_index_id_or_text(pick: dict[str, Any], expected_id: str, tmp_path: Path) -> None:
    rows, manifest = prepared(prep.run(config(PROMPTS / "problems.jsonl", tmp_path, **pick)))
    assert [row["id"] for row in rows] == [expected_id] and manifest["selection"] == pick


def test_multi_shot_sample_is_seeded(tmp_path: Path) -> None:
    def sample(seed: int) -> list[str]:
        cfg = config(PROMPTS / "problems.jsonl", tmp_path, mode="multi_shot", sample=3, seed=seed)
        return [row["id"] for row in prepared(prep.run(cfg, out=tmp_path / f"s{seed}", overwrite=True))[0]]

    picks = {seed: sample(seed) for seed in range(4)}
    assert sample(0) == picks[0]
    assert all(len(ids) == 3 and ids == sorted(ids) for ids in picks.values())  # kept in source order
    assert len({tuple(ids) for ids in picks.values()}) > 1


def test_sample_seed_defaults_to_the_run_seed(tmp_path: Path) -> None:
    cfg = config(PROMPTS / "problems.jsonl", tmp_path, mode="multi_shot", sample=2)
    cfg.run.seed = 3
    assert prepared(prep.run(cfg))[1]["selection"] == {"sample": 2, "seed": 3}


def test_shards_partition_the_problems(tmp_path: Path) -> None:
    shards = [
        [row["problem"] for row in prepared(prep.run(cfg, out=tmp_path / f"shard{k}"))[0]]
        for k in range(2)
        for cfg in [config(PROMPTS / "problems.jsonl", tmp_path, mode="multi_shot", shard=f"{k}/2")]
    ]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(UNIQUE_FIXTURE_PROBLEMS)


def test_prompt_set_reads_what_prep_wrote(tmp_path: Path) -> None:
    out = prep.run(
        config(
            PROMPTS / "questions.jsonl", tmp_path, field="question", mode="multi_shot", prompt_format="qwen25-math-cot"
        )
    )
    for path in (out, out / "prompts.parquet"):
        prompt_set = read_prompt_set(path, field="question")  # prep's file always says "problem"
        assert prompt_set.problems == ["What is $6 \\cdot 7$?", "What is $9-4$?"]
        assert prompt_set.prompt_format == "qwen25-math-cot"
    plain = read_prompt_set(PROMPTS / "problems.jsonl")
    assert plain.problems == UNIQUE_FIXTURE_PROBLEMS and plain.prompt_format is None
    pq.write_table(pa.table({"problem": pa.array([], pa.string())}), tmp_path / "empty.parquet")
    with pytest.raises(DataError, match=r"holds no prompts"):
        read_prompt_set(tmp_path / "empty.parquet")


def bad_parquet(tmp_path: Path, kind: str) -> Path:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"problem": [f"What is {n} + {n}?" for n in range(50)]}), good)
    data = good.read_bytes()
    path = tmp_path / f"{kind}.parquet"
    path.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"PAR1" + bytes(range(256)) * 4)
    return path


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("missing.jsonl", {}, r"does not exist"),
    ("folder", {}, r"is a folder"),
    ("latin1.jsonl", {}, r"not UTF-8"),
    ("truncated.parquet", {}, r"unreadable as parquet \(corrupt or truncated\?\)"),
    ("corrupt.parquet", {}, r"unreadable as parquet \(corrupt or truncated\?\)"),
    ("bad/truncated.jsonl", {}, r"line 2 is not valid JSON"),
    ("bad/problems.txt", {}, r"unknown format '\.txt'; allowed suffixes: .*\.jsonl"),
    ("bad/missing_field.jsonl", {}, r"no field 'problem'; fields: question, answer"),
    ("prompts/replicated.jsonl", {"field": "prompt"}, r"fields: data_source, problem, .*reward_model\.ground_truth"),
    ("bad/empty_problem.jsonl", {}, r"row 1: field 'problem' is empty"),
    ("bad/whitespace_problem.jsonl", {}, r"row 1: field 'problem' is empty or whitespace only"),
    ("bad/non_string_problem.jsonl", {}, r"row 1: field 'problem' holds int 42, not text"),
    ("prompts/problems.jsonl", {"index": 6}, r"index 6 is out of range: the source has 6 rows \(0\.\.5\)"),
    ("prompts/problems.jsonl", {"id": "p9"}, r"id 'p9' not found in field 'id'"),
    ("prompts/problems.jsonl", {"text": "What is 2+2?"}, r"no problem has exactly the text"),
    ("prompts/problems.jsonl", {}, r"one_shot needs --index, --id or --text: the source has 5 unique problems"),
    ("prompts/problems.jsonl", {"mode": "multi_shot", "sample": 6}, r"sample 6 is larger than the 5 unique"),
]


def resolve_source(name: str, tmp_path: Path) -> Path:
    if name == "folder":
        return FIXTURES
    if name == "latin1.jsonl":
        (tmp_path / name).write_bytes('{"problem": "caf\xe9"}\n'.encode("latin-1"))
        return tmp_path / name
    if name.endswith(".parquet"):
        return bad_parquet(tmp_path, name.split(".")[0])
    return tmp_path / name if name == "missing.jsonl" else FIXTURES / name


@pytest.mark.parametrize(("name", "data", "message"), BAD_INPUTS, ids=[f"{n}-{m[:20]}" for n, _, m in BAD_INPUTS])
def test_bad_input_fails_in_one_line_and_leaves_nothing(
    name: str, data: dict[str, Any], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match=message) as err:
        prep.run(config(resolve_source(name, tmp_path), tmp_path, **data), out=out)
    assert "\n" not in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_a_failed_prep_keeps_the_previous_output(tmp_path: Path) -> None:
    out = prep.run(config(PROMPTS / "problems.jsonl", tmp_path, index=0), out=tmp_path / "out")
    before = (out / "prompts.parquet").read_bytes()
    with pytest.raises(DataError):
        prep.run(config(FIXTURES / "bad/empty_problem.jsonl", tmp_path, index=0), out=out, overwrite=True)
    assert (out / "prompts.parquet").read_bytes() == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"shard": "3/2"}, r"shard '3/2' must be k/n with 0 <= k < n"),
        ({"shard": "two"}, r"shard 'two' must be k/n"),
        ({"mode": "multi_shot", "index": 0}, r"index apply to mode one_shot only"),
        ({"sample": 3}, r"sample apply to mode multi_shot only"),
        ({"index": 0, "id": "p1"}, r"one of index, id or text, not index and id"),
        ({"mode": "two_shot"}, r"data\.mode.*two_shot"),
    ],
)
def test_inconsistent_selection_is_a_config_error(data: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        config(PROMPTS / "problems.jsonl", tmp_path, **({"mode": "multi_shot"} if "shard" in data else {}) | data)


def test_no_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"set data\.source \(or --source\)"):
        prep.run(load_config(None, {"run.out_dir": str(tmp_path)}))


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emtune", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_prep_reports_rows_and_unique_problems(replicated_parquet: Path, tmp_path: Path) -> None:
    done = run_cli(
        "prep",
        "--source",
        str(replicated_parquet),
        "--mode",
        "one_shot",
        "--index",
        "0",
        "--out",
        str(tmp_path / "x"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "12 rows → 1 unique problem → 1 prompt (one_shot: index 0; format chat)" in done.stderr
    assert (tmp_path / "x" / "prompts.parquet").is_file() and str(tmp_path / "x") in done.stdout


def test_cli_bad_shard_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_cli(
        "prep",
        "--source",
        str(PROMPTS / "problems.jsonl"),
        "--mode",
        "multi_shot",
        "--shard",
        "3/2",
        "--out",
        str(tmp_path / "x"),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "shard '3/2'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"field": "problme"}, "problme"),
        ({"id_field": "uid"}, "uid"),
        ({"answer_field": "reward_model.truth"}, "reward_model.truth"),
    ],
)
def test_a_mistyped_field_name_is_an_error_listing_the_fields(data: dict[str, Any], field: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match=rf"has no field '{field}'; fields: .*problem") as err:
        prep.run(config(PROMPTS / "problems.jsonl", tmp_path, index=0, **data), out=out)
    assert "\n" not in str(err.value) and not out.exists()


def test_default_id_and_answer_fields_may_be_absent(tmp_path: Path) -> None:
    source = tmp_path / "bare.jsonl"
    source.write_text(json.dumps({"problem": "What is $1+1$?"}) + "\n", encoding="utf-8")
    rows, _ = prepared(prep.run(config(source, tmp_path, index=0), out=tmp_path / "out"))
    assert rows == [{"id": "0", "problem": "What is $1+1$?", "answer": None}]
