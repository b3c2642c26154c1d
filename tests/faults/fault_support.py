"""Running `emtune` as a pod would: a subprocess that a test parks at a named point and then signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
    return subprocess.Popen(
        [sys.executable, "-m", "emtune", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"exited {process.returncode} before reaching the pause point:\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def stop(process: subprocess.Popen, timeout: float) -> tuple[float, str]:
    """SIGTERM, as the kubelet sends it; the seconds until the process ended, and its stderr."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"still running {timeout} s after SIGTERM") from None
    return time.monotonic() - started, err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]
