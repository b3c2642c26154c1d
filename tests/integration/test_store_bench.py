"""`emtune bench store` runs against both local servers and reports a ratio per server."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from emtune.cli import app
from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.store.bench import run_bench


def test_bench_measures_store_and_baseline_on_both_servers(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    before = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}

    result = CliRunner().invoke(app, ["bench", "store", "--size-mb", "6", "--files", "3"])

    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    rows = [line.split("│") for line in result.output.splitlines() if "moto" in line or "rclone" in line]
    assert [cells[1].strip() for cells in rows] == ["moto", "rclone"]
    for cells in rows:
        assert float(cells[5]) > 0 and float(cells[8]) > 0  # push × and pull × ratios
    # The benchmark's throw-away keys do not leak into the caller's environment.
    assert {name: os.environ.get(name) for name in before} == before


def test_bench_refuses_an_unknown_server():
    with pytest.raises(StoreError, match=r"unknown bench server\(s\) \['minio'\]; allowed: moto, rclone"):
        run_bench(StoreConfig(), size_mb=1, files=1, servers=["minio"])


def test_ckpt_bytes_pulls_model_files_only_and_pushes_state_with_the_final_step_only():
    from emtune.bench.ckpt_bytes import run_bench as bytes_bench

    first, final = bytes_bench(steps=2)
    assert (first.step, final.step) == (1, 2)
    assert first.pushed == first.pulled < first.folder  # a step before the last: its model only
    assert final.pushed == final.folder  # the final step: model and resume state
    assert final.pulled < final.folder  # evaluation never fetches resume state
