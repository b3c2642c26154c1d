"""`emtune bench grade`: samples graded per second for each benchmark kind, each against a baseline measured in the
same run — maths: the pool against one process; logic: in the evaluator (no baseline needed beyond itself);
code: the sandbox against a bare `python3 program.py` subprocess, which gives the sandbox's overhead per program."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emtune.config.evaluate import EvalConfig
from emtune.data.benchmarks import load_benchmark
from emtune.evaluate.code_answers import program_with_tests
from emtune.evaluate.grading import Grader
from emtune.evaluate.logic_answers import grade_assignment
from emtune.evaluate.sandbox import Sandbox


@dataclass(frozen=True)
class Rate:
    kind: str
    name: str
    per_s: float
    baseline: str  # the measurement this one is compared with (its own name for a baseline)


def _timed(work: int, run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return work / (time.perf_counter() - started)


def _maths(items: int, workers: int, timeout_s: float) -> list[Rate]:
    pairs = [(f"so the answer is \\boxed{{{k}/2}}", f"\\frac{{{k}}}{{2}}") for k in range(items)]
    rates = []
    for count in dict.fromkeys((1, workers)):
        with Grader(timeout_s, count) as grader:
            grader.grade(pairs[: 2 * count])  # workers started and math-verify imported before the clock runs
            rate = _timed(items, lambda: grader.grade(pairs))
        rates.append(Rate("math", f"math-verify, {count} process(es)", rate, "math-verify, 1 process(es)"))
    return rates


def _logic(items: int) -> Rate:
    benchmark = load_benchmark("kk-8")
    pairs = [(f"CONCLUSION: {item.gold}", item.gold) for item in benchmark.items]
    pairs = (pairs * (items // len(pairs) + 1))[:items]
    rate = _timed(items, lambda: [grade_assignment(c, g) for c, g in pairs])
    return Rate("logic", "knight/knave reader, in process", rate, "knight/knave reader, in process")


def _code(programs: int, cfg: EvalConfig) -> list[Rate]:
    """Canonical-style HumanEval programs (the first `programs`), bare then sandboxed serially then concurrently."""
    benchmark = load_benchmark("humaneval")
    items = (benchmark.items * (programs // len(benchmark.items) + 1))[:programs]
    # The prompt alone defines the function with an empty body (its docstring): the tests then fail fast, which
    # times process start-up and tear-down — what the sandbox adds to — rather than the solutions' own work.
    sources = [program_with_tests(item.question + "    pass\n", item.gold) for item in items]
    sandbox = Sandbox(cfg.sandbox)
    with tempfile.TemporaryDirectory(prefix="emtune-bench-grade-") as tmp:
        paths = [Path(tmp) / f"p{i}.py" for i in range(len(sources))]
        for path, source in zip(paths, sources, strict=True):
            path.write_text(source, encoding="utf-8")
        bare = "bare subprocess, 1 at a time"
        rates = [Rate("code", bare, _timed(programs, lambda: _run_bare(sandbox.python, paths)), bare)]
    serial = Sandbox(cfg.sandbox.model_copy(update={"concurrency": 1}))
    rates.append(Rate("code", "sandbox, 1 at a time", _timed(programs, lambda: [serial.run(s) for s in sources]), bare))
    name = f"sandbox, {cfg.sandbox.concurrency} at a time"
    rates.append(Rate("code", name, _timed(programs, lambda: sandbox.run_all(sources)), bare))
    return rates


def _run_bare(python: str, paths: list[Path]) -> None:
    for path in paths:
        subprocess.run([python, "-I", "-B", str(path)], capture_output=True, timeout=60, check=False)


def bench_grade(cfg: EvalConfig, items: int, programs: int) -> list[Rate]:
    workers = cfg.grading_workers or 2
    return [*_maths(items, workers, cfg.grading_timeout_s), _logic(items), *_code(programs, cfg)]
