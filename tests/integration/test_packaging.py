"""The wheel carries everything `emtune pipeline` and the benchmark registry need (not just the editable tree)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import emtune, emtune.components, emtune.workflows
assert emtune.__file__.startswith(sys.argv[1]), emtune.__file__
assert emtune.workflows.__file__.startswith(sys.argv[1]), emtune.workflows.__file__
from emtune.data.benchmarks import load_benchmark
assert len(load_benchmark("demo-arith").items) == 8
assert len(load_benchmark("demo-add").items) == 400
from emtune.model.loading import load_model
assert load_model("builtin:tiny-math").config.model_type == "qwen2"
from emtune.cli import main
sys.argv = ["emtune", "pipeline", "compile", "-o", sys.argv[2]]
main()
"""


@pytest.mark.slow
def test_wheel_compiles_the_pipeline_and_ships_benchmarks(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("emtune-*.whl"))
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # The dashboard's pages and its offline JavaScript/CSS (no CDN) travel in the wheel.
    for asset in ("templates/base.html", "static/htmx.min.js", "static/uPlot.iife.min.js", "static/uPlot.LICENSE"):
        assert (unpacked / "emtune" / "dashboard" / asset).is_file(), asset
    out = tmp_path / "pipeline.yaml"
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(unpacked), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert "emtune-pipeline" in out.read_text()
