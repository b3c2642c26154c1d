"""Evaluation settings (`emtune eval`)."""

from __future__ import annotations

from pydantic import Field

from emtune.config_base import Section


class EvalConfig(Section):
    benchmarks: list[str] = Field(default_factory=lambda: ["math500"], description="Benchmarks to evaluate on.")
