"""kfp.local's output during `emtune pipeline run --local`: into the run's log, one event per task start and
end, and a failed task's own error as the one line the user sees."""

from __future__ import annotations

import io
from pathlib import Path

from emtune.runs.local import ExecutorLog, TaskEvent

CYAN, GREEN, RED, RESET = "\x1b[96m", "\x1b[92m", "\x1b[91m", "\x1b[0m"


def feed(stream: ExecutorLog, text: str) -> None:
    # kfp prints in pieces that do not follow line ends
    for start in range(0, len(text), 7):
        stream.write(text[start : start + 7])
    stream.close_line()


def kfp_task(name: str, status: str, *output: str) -> str:
    colour = GREEN if status == "SUCCESS" else RED
    lines = [f"07:00:00.000 - INFO - Executing task {CYAN}'{name}'{RESET}", "07:00:00.001 - INFO - Streamed logs:", ""]
    lines += [f"    {line}" for line in output]
    lines.append(f"07:00:01.000 - INFO - Task {CYAN}'{name}'{RESET} finished with status {colour}{status}{RESET}")
    return "\n".join(lines) + "\n"


def test_the_log_file_gets_every_line_without_colour_and_the_terminal_only_task_events() -> None:
    events: list[TaskEvent] = []
    log, terminal = io.StringIO(), io.StringIO()
    stream = ExecutorLog(log, events.append)
    feed(stream, kfp_task("prep", "SUCCESS", "1 row -> 1 prompt") + kfp_task("train", "SUCCESS", "step 1 loss 2.0"))
    assert "\x1b" not in log.getvalue() and "    step 1 loss 2.0" in log.getvalue()
    assert len(log.getvalue().splitlines()) == 10
    assert [(e.task, e.status) for e in events] == [
        ("prep", "started"),
        ("prep", "SUCCESS"),
        ("train", "started"),
        ("train", "SUCCESS"),
    ]
    assert all(e.seconds is not None and e.seconds >= 0 for e in events if e.status != "started")
    assert terminal.getvalue() == ""


def test_verbose_echoes_the_stream_without_colour_off_a_terminal() -> None:
    log, terminal = io.StringIO(), io.StringIO()
    feed(ExecutorLog(log, lambda event: None, echo=terminal), kfp_task("prep", "SUCCESS", "hello"))
    assert terminal.getvalue() == log.getvalue() and "hello" in terminal.getvalue()


def test_a_failed_task_with_a_user_error_becomes_its_one_line() -> None:
    stream = ExecutorLog(io.StringIO(), lambda event: None)
    traceback = [
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "emtune.data.sources.SourceNotFound: source file 'gone.jsonl' does not exist",
    ]
    feed(stream, kfp_task("prep", "FAILURE", *traceback))
    error = stream.failure(RuntimeError("Task 'prep' finished with status FAILURE"), Path("/runs/x/pipeline.log"))
    assert error is not None
    assert str(error) == "task 'prep' failed: source file 'gone.jsonl' does not exist (full log: /runs/x/pipeline.log)"


def test_a_failed_task_with_a_bug_points_at_its_traceback() -> None:
    stream = ExecutorLog(io.StringIO(), lambda event: None)
    feed(stream, kfp_task("train", "FAILURE", "Traceback (most recent call last):", "KeyError: 'rank'"))
    feed(stream, "07:00:02.000 - INFO - Skipping task report: upstream task(s) ['train'] failed.\n")
    error = stream.failure(RuntimeError("Inner task failed: 'train'"), Path("/runs/x/pipeline.log"))
    assert error is not None and "KeyError: 'rank'" in str(error) and "/runs/x/pipeline.log" in str(error)
    # A line shaped like an emtune error whose class is not an EmtuneError is not taken for one.
    stream = ExecutorLog(io.StringIO(), lambda event: None)
    feed(stream, kfp_task("train", "FAILURE", "emtune.train.trainer.Nothing: looks like one"))
    error = stream.failure(RuntimeError("Inner task failed: 'train'"), Path("/log"))
    assert error is not None and "failed with" in str(error)
