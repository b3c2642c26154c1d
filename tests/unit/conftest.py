"""Running the real `emtune` entry point (`emtune.cli.main`) in-process, as a user's shell would."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str
    seconds: float


@pytest.fixture
def emtune_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Call `emtune ARGS...` through the console-script entry: its exit code, stdout, stderr and duration.

    An exception that escapes `main` (a bug, which would print a traceback) fails the test by propagating.
    """
    from emtune.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["emtune", *args])
        capsys.readouterr()
        started = time.monotonic()
        with pytest.raises(SystemExit) as stopped:
            main()
        seconds = time.monotonic() - started
        captured = capsys.readouterr()
        code = stopped.value.code
        return CliResult(code if isinstance(code, int) else 1, captured.out, captured.err, seconds)

    return run
