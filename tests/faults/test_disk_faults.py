"""Full and read-only disks (tmpfs mounts, as root), and a torn metrics line: one error line, nothing half-written
under an output's name, and a resume that drops the torn line and says so."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fault_support import error_lines, finish, start, tiny_config, write_config

from emtune.train import checkpoint, trainer


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (the CI machine runs the fault suite as root)")
        target = tmp_path / name
        target.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], check=True)
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.mark.faults
def test_a_full_disk_during_save_is_one_line_and_leaves_no_step(tmpfs, tmp_path):
    disk = tmpfs("full", "size=2m")  # a tiny step with its resume state is more than 2 MB
    cfg = tiny_config(disk / "run", **{"train.max_steps": 1})
    process = start(["train", "--config", str(write_config(cfg, tmp_path / "run.yaml"))])
    err = finish(process, timeout=180)

    assert process.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert "cannot write step 1" in line or "No space left on device" in line
    assert checkpoint.complete_steps(disk / "run") == []
    leftovers = list((disk / "run").iterdir()) if (disk / "run").exists() else []
    assert not [p for p in leftovers if p.name.startswith(".step-")]


@pytest.mark.faults
def test_a_read_only_eval_output_is_one_line(tmpfs, tmp_path, tiny_model_dir):
    disk = tmpfs("readonly", "ro,size=1m")
    process = start(
        [
            "eval",
            "--model",
            str(tiny_model_dir),
            "--benchmarks",
            "demo-arith",
            "--out",
            str(disk / "eval"),
            "--set",
            "eval.backend=hf",
            "--set",
            "eval.limit=1",
        ]
    )
    err = finish(process, timeout=180)

    assert process.returncode == 2, err[-2000:]
    assert "Traceback" not in err and len(error_lines(err)) == 1
    assert "not writable" in error_lines(err)[0] or "read-only" in error_lines(err)[0]
    assert not list(disk.iterdir())


def test_a_torn_last_metrics_line_is_dropped_on_resume_with_a_message(tmp_path, caplog):
    run_dir = tmp_path / "run"
    trainer.run(tiny_config(run_dir, **{"train.max_steps": 2}))
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 3, "loss": 0.4')  # the write a kill interrupted

    with caplog.at_level(logging.WARNING):
        trainer.run(tiny_config(run_dir, **{"train.max_steps": 3}), resume=True)

    assert "dropped the torn last line" in caplog.text
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
