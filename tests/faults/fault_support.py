"""Running `emtune` as a pod would: a subprocess that a test parks at a named point and then signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from emtune.bench.ckpt_bytes import TINY_RUN
from emtune.config import RunConfig, load_config

SIGTERM_EXIT = 128 + signal.SIGTERM


def tiny_config(out_dir: Path, **extra: Any) -> RunConfig:
    return load_config(None, {**TINY_RUN, "run.out_dir": str(out_dir), **extra})


def write_config(cfg: RunConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def start(argv: list[str], *, pause: str | None = None, beacon: Path | None = None) -> subprocess.Popen:
    """`python -m emtune <argv>`, parked at `pause` (point[@n]) where it writes `beacon`, when given."""
    env = dict(os.environ)
    env.pop("EMTUNE_FAULT_PAUSE", None)
    if pause is not None:
        assert beacon is not None
        env["EMTUNE_FAULT_PAUSE"] = f"{pause}:{beacon}"
    # Output to files, not pipes: a task process a command started may outlive it holding a pipe open, and the
    # test measures the command itself.
    stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115  (lives as long as the process)
    process = subprocess.Popen(
        [sys.executable, "-m", "emtune", *argv], env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
    )
    _stderr_of[process.pid] = stderr
    return process


_stderr_of: dict[int, Any] = {}


def stderr_of(process: subprocess.Popen) -> str:
    handle = _stderr_of[process.pid]
    handle.seek(0)
    return str(handle.read())


def finish(process: subprocess.Popen, timeout: float) -> str:
    """Wait for the command to end; its stderr."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"still running after {timeout} s:\n{stderr_of(process)[-3000:]}") from None
    return stderr_of(process)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            err = stderr_of(process)
            raise AssertionError(f"exited {process.returncode} before reaching the pause point:\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def stop(process: subprocess.Popen, timeout: float) -> tuple[float, str]:
    """SIGTERM, as the kubelet sends it; the seconds until the process ended, and its stderr."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"still running {timeout} s after SIGTERM:\n{stderr_of(process)[-3000:]}") from None
    return time.monotonic() - started, stderr_of(process)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]
