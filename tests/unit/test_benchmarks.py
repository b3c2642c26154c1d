"""The benchmark registry: the six harness layouts, gold extraction, count checks, custom YAML specs, the
shipped demo sets and the `emtune benchmarks` commands. Fixture files only; no network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emtune.data import benchmarks
from emtune.data.benchmarks import get_benchmark, list_benchmarks, load_benchmark, register_benchmark_spec
from emtune.data.fields import answer_text, last_boxed
from emtune.errors import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
LAYOUTS = FIXTURES / "benchmarks"
SPECS = FIXTURES / "specs"
BUILTINS = {"math500": 500, "minerva_math": 272, "olympiadbench": 675, "amc23": 40, "aime24": 30, "aime25": 30}


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private registry for tests that register specs, so no test sees another's custom benchmarks."""
    monkeypatch.setattr(benchmarks, "_registry", {})
    monkeypatch.setattr(benchmarks, "_defaults_loaded", False)
    monkeypatch.delenv(benchmarks.SPECS_ENV, raising=False)


EXPECTED = {
    "math500": (
        ["test/prealgebra/1.json", "test/prealgebra/2.json", "test/prealgebra/3.json"],
        "What is $1+2$?",
        ["3", "\\frac{3}{4}", "\\$8"],
    ),
    "minerva_math": (["0", "1", "2"], "A ball falls for 2 s", ["20", "h \\nu^{\\frac{1}{2}\\cdot 2}", "\\frac{1}{2}"]),
    "olympiadbench": (["101", "102", "103"], "Find all $x$ with $x^2=4$.", ["2,-2", "1024", "\\frac{n(n+1)}{2}"]),
    "amc23": (["0", "1", "2"], "What is $3 \\times 9$?", ["27", "-1", "2.5"]),
    "aime24": (["60", "61", "62"], "Find the remainder when", ["6", "025", "110"]),
    "aime25": (["0", "1", "2"], "Find the sum of the first", ["55", "90^\\circ", "49"]),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_harness_layout_loads_with_its_golds(name: str) -> None:
    ids, question_start, golds = EXPECTED[name]
    benchmark = load_benchmark(name, str(LAYOUTS), check_count=False)
    assert benchmark.name == name and benchmark.source == str(LAYOUTS / name / "test.jsonl")
    assert [item.id for item in benchmark.items] == ids
    assert benchmark.items[0].question.startswith(question_start)
    assert [item.gold for item in benchmark.items] == golds


def test_builtins_are_registered_with_counts_and_hub_sources() -> None:
    specs = {spec.name: spec for spec in list_benchmarks()}
    assert {name: specs[name].count for name in BUILTINS} == BUILTINS
    assert all(specs[name].source.startswith("hf://") for name in BUILTINS)


def test_count_is_checked_on_load() -> None:
    with pytest.raises(DataError, match=r"'math500' from .*math500/test\.jsonl' has 3 items; expected 500"):
        load_benchmark("math500", str(LAYOUTS))


@pytest.mark.parametrize("source", ["folder", "file"])
def test_source_may_be_a_file_or_a_folder_holding_test_jsonl(source: str) -> None:
    where = LAYOUTS / "aime25" if source == "folder" else LAYOUTS / "aime25" / "test.jsonl"
    assert len(load_benchmark("aime25", str(where), check_count=False).items) == 3


def test_missing_layout_lists_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"looked for .*aime24/test\.jsonl' and .*/test\.jsonl'"):
        load_benchmark("aime24", str(tmp_path))


def test_unknown_benchmark_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match=r"unknown benchmark 'math5000'; known: .*demo-arith.*math500"):
        get_benchmark("math5000")


@pytest.mark.parametrize("name", ["demo-arith", "demo-algebra"])
def test_shipped_demo_benchmarks_load_offline(name: str) -> None:
    benchmark = load_benchmark(name)  # from the package, count checked
    assert 6 <= len(benchmark.items) <= 10 and all(item.gold for item in benchmark.items)
    assert len({item.id for item in benchmark.items}) == len(benchmark.items)


def test_a_row_without_a_boxed_answer_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"row 0: field 'solution' has no \\boxed\{\} answer"):
        load_benchmark("minerva_math", str(FIXTURES / "bad" / "minerva_no_box.jsonl"), check_count=False)


def test_custom_spec_uses_the_same_mechanism(registry: None) -> None:
    spec = register_benchmark_spec(SPECS / "quiz.yaml")
    assert spec.source == str(SPECS / "quiz.jsonl")  # relative to the spec file
    assert "my-quiz" in [item.name for item in list_benchmarks()] and "math500" in [s.name for s in list_benchmarks()]
    quiz = load_benchmark("my-quiz")
    assert [(item.id, item.gold) for item in quiz.items] == [("q0", "6"), ("q1", "4")]


def test_spec_path_works_as_a_name_and_env_registers_specs(registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_benchmark(str(SPECS / "quiz.yaml")).name == "my-quiz"
    monkeypatch.setattr(benchmarks, "_registry", {})
    monkeypatch.setattr(benchmarks, "_defaults_loaded", False)
    monkeypatch.setenv(benchmarks.SPECS_ENV, str(SPECS / "quiz.yaml"))
    assert get_benchmark("my-quiz").count == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nsource: a.jsonl\nquestion_field: q\nanswer: a\nanswer_extract: last_boxed\n", r"answer_extract"),
        ("name: x\nsource: a.jsonl\nquestion_field: q\n", r"a math benchmark needs answer"),
        (
            "name: x\nsource: a.jsonl\nquestion_field: q\nanswer: {field: a, extract: first_box}\n",
            r"'value', 'last_boxed' or 'after_hashes'",
        ),
        ("- a list\n", r"must be a mapping"),
        ("name: [unclosed\n", r"not valid YAML"),
    ],
)
def test_invalid_spec_fails_in_one_line(text: str, message: str, tmp_path: Path, registry: None) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        register_benchmark_spec(path)
    assert "\n" not in str(err.value)


def test_last_boxed_balances_braces() -> None:
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{1}{2}} end") == "\\frac{1}{2}"
    assert last_boxed("\\fbox{x^{2}}") == "x^{2}"
    assert last_boxed("no box here") is None
    assert last_boxed("\\boxed{never closed") is None


def test_answer_text_normalises_harness_values() -> None:
    assert [answer_text(v) for v in (27.0, -1.0, 2.5, 7)] == ["27", "-1", "2.5", "7"]
    assert answer_text(["$\\frac{1}{2}$"]) == "\\frac{1}{2}"
    assert answer_text("\\$8") == "\\$8"  # an escaped dollar is part of the answer
    assert answer_text(None) is None and answer_text([]) is None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emtune", *args], capture_output=True, text=True, timeout=120)


def test_cli_list_and_show() -> None:
    listed = run_cli("benchmarks", "list", "--spec", str(SPECS / "quiz.yaml"))
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in [*BUILTINS, "demo-arith", "my-quiz"]) and "675" in listed.stdout

    shown = run_cli("benchmarks", "show", "amc23", "-n", "2", "--source", str(LAYOUTS), "--no-check-count")
    assert shown.returncode == 0, shown.stderr
    assert "amc23: 3 items" in shown.stdout and "gold: 27" in shown.stdout and "gold: -1" in shown.stdout
    assert "gold: 2.5" not in shown.stdout  # -n 2


def test_cli_show_unknown_benchmark_exits_2() -> None:
    shown = run_cli("benchmarks", "show", "nope")
    assert shown.returncode == 2 and "unknown benchmark 'nope'" in shown.stderr


def test_kinds_of_the_builtins() -> None:
    specs = {spec.name: spec for spec in list_benchmarks()}
    assert specs["humaneval"].kind == "code" and specs["humaneval"].count == 164
    assert {specs[f"kk-{n}"].kind for n in range(2, 9)} == {"logic"}
    assert specs["math500"].kind == "math" and specs["gsm8k"].count == 1319 and specs["math"].count == 5000
    assert specs["gsm8k"].source.startswith("hf://") and specs["math"].source.startswith("hf://")


def test_a_code_benchmark_from_a_users_file(tmp_path: Path, registry: None) -> None:
    rows = [
        {"task": "m1", "text": "Write add(a, b).", "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]},
        {
            "task": "m2",
            "text": "Write neg(x).",
            "test_list": ["def check(f):", "    assert f(1) == -1"],
            "entry_point": "neg",
        },
    ]
    (tmp_path / "mbpp.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = tmp_path / "mbpp.yaml"
    spec.write_text(
        "name: mbpp-mine\nkind: code\nsource: mbpp.jsonl\nquestion_field: text\ntests_field: test_list\n"
        "entry_point_field: entry_point\nid_field: task\n"
        "prompt: '{question} Use a code block.'\n"
    )
    benchmark = load_benchmark(str(spec))
    assert benchmark.kind == "code" and [item.id for item in benchmark.items] == ["m1", "m2"]
    assert benchmark.items[0].gold == "assert add(1, 2) == 3\nassert add(0, 0) == 0\n"
    assert benchmark.items[1].gold == "def check(f):\n    assert f(1) == -1\n\n\ncheck(neg)\n"
    assert benchmark.spec is not None and benchmark.spec.render("Q?") == "Q? Use a code block."
    assert benchmark.spec.effective_prompt_format("qwen25-math-cot") == "chat"


def test_gsm8k_golds_follow_the_last_hashes(tmp_path: Path) -> None:
    rows = [{"question": "2+2?", "answer": "2+2 = 4\n#### 4"}, {"question": "big?", "answer": "so\n#### 1,200"}]
    (tmp_path / "gsm8k.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    benchmark = load_benchmark("gsm8k", str(tmp_path / "gsm8k.jsonl"), check_count=False)
    assert [item.gold for item in benchmark.items] == ["4", "1200"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nkind: code\nsource: a.jsonl\nquestion_field: q\n", r"a code benchmark needs tests_field"),
        ("name: x\nkind: logic\nsource: a.jsonl\nquestion_field: q\n", r"a logic benchmark needs answer"),
        ("name: x\nkind: prose\nsource: a.jsonl\nquestion_field: q\nanswer: a\n", r"kind: Input should be 'math'"),
        ("name: x\nsource: a.jsonl\nquestion_field: q\nanswer: a\nprompt: no slot\n", r"must contain \{question\}"),
    ],
)
def test_kind_specific_spec_errors(text: str, message: str, tmp_path: Path, registry: None) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        register_benchmark_spec(path)
    assert "\n" not in str(err.value)


def test_a_package_source_that_is_not_there_is_named(tmp_path: Path, registry: None) -> None:
    spec = tmp_path / "pkg.yaml"
    spec.write_text(
        "name: p\nkind: code\nsource: package://no_such_pkg/data.jsonl\nquestion_field: q\ntests_field: t\n"
    )
    with pytest.raises(DataError, match=r"no installed package 'no_such_pkg'"):
        load_benchmark(str(spec))


def test_harness_folder_registers_each_dataset_with_its_fields(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sets = {
        "gsm8k": {"question": "2+3?", "answer": "2+3=5\n#### 5"},
        "math": {"problem": "1+1?", "solution": "It is $\\boxed{2}$."},
        "mawps": {"input": "3 apples and 4 more?", "target": 7.0},
        "tabmwp": {"table": "a|b", "choices": None},  # no question field: skipped, with the reason
    }
    for name, row in sets.items():
        (data / name).mkdir(parents=True)
        (data / name / "test.jsonl").write_text(json.dumps(row) + "\n")
    shown = run_cli("benchmarks", "add", "--harness", str(data), "--out", str(tmp_path / "specs"))
    assert shown.returncode == 0, shown.stderr
    assert "tabmwp" in shown.stdout and "no question field" in shown.stdout
    golds = {}
    for name in ("gsm8k", "math", "mawps"):
        benchmark = load_benchmark(str(tmp_path / "specs" / f"{name}.yaml"))
        assert benchmark.source == str(data / name / "test.jsonl") and benchmark.kind == "math"
        golds[name] = (benchmark.items[0].question, benchmark.items[0].gold)
    assert golds == {"gsm8k": ("2+3?", "5"), "math": ("1+1?", "2"), "mawps": ("3 apples and 4 more?", "7")}
    assert not (tmp_path / "specs" / "tabmwp.yaml").exists()
