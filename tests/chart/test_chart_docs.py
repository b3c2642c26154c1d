"""The chart's README is generated from values.yaml's comments and its schema covers exactly its values."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import yaml
from chart_render import CHART, REPO

sys.path.insert(0, str(REPO / "scripts"))
import chart_readme


def test_readme_is_fresh_and_every_value_documented() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "chart_readme.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_generator_finds_undocumented_values_and_continued_comments() -> None:
    text = "# -- Top.\n#   continued.\ntop: 1\nmap:\n  # -- Inner.\n  inner: {a: 1}\n  bare: 2\n"
    entries = chart_readme.documented_entries(text)
    assert entries == [chart_readme.Entry("top", "Top. continued."), chart_readme.Entry("map.inner", "Inner.")]
    assert chart_readme.undocumented(yaml.safe_load(text), entries) == ["map.bare"]


def _schema_keys(schema: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, sub in schema.get("properties", {}).items():
        keys.add(f"{prefix}{name}")
        if sub.get("additionalProperties") is False:
            keys |= _schema_keys(sub, f"{prefix}{name}.")
    return keys


def _value_keys(values: dict[str, Any], schema_keys: set[str], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in values.items():
        key = f"{prefix}{name}"
        keys.add(key)
        if isinstance(value, dict) and any(k.startswith(f"{key}.") for k in schema_keys):
            keys |= _value_keys(value, schema_keys, f"{key}.")
    return keys


def test_schema_is_closed_and_matches_the_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    schema_keys = _schema_keys(schema)
    value_keys = _value_keys(values, schema_keys)
    # Every value has a schema entry and every fixed schema entry a default in values.yaml.
    assert value_keys == schema_keys
