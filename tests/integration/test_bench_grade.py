"""`emtune bench grade`: one rate per measurement and kind, each against a baseline measured in the same run."""

from __future__ import annotations

from typer.testing import CliRunner

from emtune.cli.app import app
from emtune.config.evaluate import EvalConfig
from emtune.evaluate.bench_grade import bench_grade


def test_every_kind_is_measured_against_its_baseline() -> None:
    rates = bench_grade(EvalConfig(grading_workers=2), items=20, programs=4)
    assert [rate.kind for rate in rates] == ["math", "math", "logic", "code", "code", "code"]
    names = {rate.name for rate in rates}
    assert all(rate.per_s > 0 and rate.baseline in names for rate in rates)
    assert [rate.baseline == rate.name for rate in rates] == [True, False, True, True, False, False]


def test_the_command_prints_the_sandbox_overhead() -> None:
    result = CliRunner().invoke(app, ["bench", "grade", "--items", "10", "--programs", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "sandbox overhead per program:" in result.output and "code" in result.output
