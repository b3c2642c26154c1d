"""Grading per benchmark kind. math: is a completion's final answer equivalent to the gold (math-verify)? code:
does the extracted program pass the item's tests in the sandbox (emtune.evaluate.sandbox)? logic: is every
person's knight/knave kind right (emtune.evaluate.logic_answers)?

The prediction is the content of the completion's last `\\boxed{}`; without one, math-verify's own extraction
(LaTeX, then plain expressions) picks the answer. The gold is wrapped as `$...$` so it is parsed as LaTeX:
bare strings fall back to a plain parser that gets `3\\sqrt{2}`, tuples, polynomials and `\\text{(B)}` wrong.

math-verify's timeouts use `signal.alarm`, which only works in a process's main thread, and some sympy
simplifications never end. So every item is graded in a worker process under its own alarm; a worker that
stops answering altogether (stuck in C code) is killed and its pool replaced. A timeout counts as wrong and is
reported apart.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.pool import Pool
from types import FrameType
from typing import Any

from emtune.config.evaluate import SandboxConfig
from emtune.data.fields import last_boxed, without_percent
from emtune.evaluate.code_answers import extract_code, program_with_tests
from emtune.evaluate.logic_answers import grade_assignment
from emtune.evaluate.sandbox import Sandbox

log = logging.getLogger(__name__)

# Seconds a worker may take beyond the item's own limit before it is presumed stuck and killed.
_STUCK_GRACE_S = 30.0
_START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Grade:
    extracted: str | None  # the answer found in the completion, as text; None when nothing parsed
    correct: bool
    timed_out: bool = False


class GradingTimeout(BaseException):
    """Raised by the alarm; a BaseException so math-verify's `except Exception` blocks cannot swallow it."""


def _wrap_latex(answer: str) -> str:
    answer = answer.strip()
    if answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$")
    return f"${answer}$"


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise GradingTimeout

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def grade_completion(completion: str, gold: str, timeout_s: float) -> Grade:
    """Grade one completion in this process's main thread, within `timeout_s` seconds."""
    from math_verify import parse, verify

    extracted: str | None = last_boxed(completion)
    try:
        with _deadline(timeout_s):
            gold_parsed = parse(_wrap_latex(gold), parsing_timeout=None)
            if extracted is not None:  # a trailing % dropped, as from the gold (data.fields.normalise_gold)
                predicted = parse(_wrap_latex(without_percent(extracted)), parsing_timeout=None)
            else:
                predicted = parse(completion, parsing_timeout=None)
                extracted = str(predicted[-1]) if predicted else None
            correct = bool(gold_parsed and predicted) and verify(gold_parsed, predicted, timeout_seconds=None)
    except GradingTimeout:
        return Grade(extracted=extracted, correct=False, timed_out=True)
    return Grade(extracted=extracted, correct=bool(correct))


def _grade_item(item: tuple[str, str, float]) -> Grade:
    return grade_completion(*item)


def _quiet_worker() -> None:
    # math-verify logs a warning per call when its own timeouts are off: ours are in force instead.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    import math_verify  # noqa: F401  import once per worker, not on the first item


def _ready() -> bool:
    return True


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class Grader:
    """A pool of grading processes (maths) and a sandbox (code); use as a context manager and call `grade` as
    often as needed. Each is started on its first use."""

    def __init__(self, timeout_s: float = 10.0, workers: int = 0, sandbox: SandboxConfig | None = None) -> None:
        self.timeout_s = timeout_s
        self.workers = workers or default_workers()
        self.sandbox_config = sandbox or SandboxConfig()
        self._pool: Pool | None = None
        self._sandbox: Sandbox | None = None

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _start(self) -> None:
        # spawn: workers never inherit a forked copy of torch's or vLLM's threads. A pool whose workers die while
        # starting (an unguarded main script, say) would otherwise hang every item until it counted as a timeout.
        self._pool = multiprocessing.get_context("spawn").Pool(self.workers, initializer=_quiet_worker)
        try:
            self._pool.apply_async(_ready).get(timeout=_START_TIMEOUT_S)
        except multiprocessing.TimeoutError:
            self.close()
            raise RuntimeError(
                f"grading processes did not start within {_START_TIMEOUT_S:.0f} s; a script that evaluates must guard "
                "its entry point with `if __name__ == '__main__':` (multiprocessing spawn)"
            ) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def grade(self, items: Sequence[tuple[str, str]], kind: str = "math") -> list[Grade]:
        """Grades for (completion, gold) pairs of a benchmark of `kind`, in order."""
        if kind == "code":
            return self._grade_code(items)
        if kind == "logic":
            return [Grade(*grade_assignment(completion, gold)) for completion, gold in items]
        if self._pool is None:
            self._start()
        grades: list[Grade | None] = [None] * len(items)
        start = 0
        while start < len(items):
            start = self._grade_from(items, start, grades)
        done = [grade for grade in grades if grade is not None]
        assert len(done) == len(items)
        return done

    def _grade_code(self, items: Sequence[tuple[str, str]]) -> list[Grade]:
        """Each extracted program runs with its item's tests in the sandbox; passing means exiting 0 in time."""
        if self._sandbox is None:
            self._sandbox = Sandbox(self.sandbox_config)
        codes = [extract_code(completion) for completion, _ in items]
        programs = [program_with_tests(code, tests) for code, (_, tests) in zip(codes, items, strict=True)]
        results = self._sandbox.run_all(programs)
        return [Grade(code, result.passed, result.timed_out) for code, result in zip(codes, results, strict=True)]

    def _grade_from(self, items: Sequence[tuple[str, str]], start: int, grades: list[Grade | None]) -> int:
        """Grade items[start:] into `grades`; returns where to resume (len(items) when done)."""
        assert self._pool is not None
        pending = [
            (index, self._pool.apply_async(_grade_item, ((completion, gold, self.timeout_s),)))
            for index, (completion, gold) in enumerate(items[start:], start)
        ]
        # Items are dispatched in order, so once item i-1 is back, item i is running or next in line: it must
        # finish within its own limit (plus start-up slack) unless its worker is stuck beyond the alarm's reach.
        patience = 2 * self.timeout_s + _STUCK_GRACE_S
        for index, result in pending:
            try:
                grades[index] = result.get(timeout=patience)
            except multiprocessing.TimeoutError:
                log.warning(
                    "grading item %d did not return within %.0f s; restarting the grading pool", index, patience
                )
                grades[index] = Grade(extracted=last_boxed(items[index][0]), correct=False, timed_out=True)
                self.close()
                self._start()
                return index + 1
        return len(items)


def grade_all(
    items: Sequence[tuple[str, str]],
    timeout_s: float = 10.0,
    workers: int = 0,
    kind: str = "math",
    sandbox: SandboxConfig | None = None,
) -> list[Grade]:
    with Grader(timeout_s, workers, sandbox) as grader:
        return grader.grade(items, kind)
