"""Run-config validation: unknown keys, wrong types and out-of-range values fail with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emtune.config import RunConfig, load_config, parse_override
from emtune.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def flat(cfg: RunConfig) -> dict[str, object]:
    return {f"{section}.{key}": value for section, fields in cfg.model_dump().items() for key, value in fields.items()}


def test_defaults_load_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No path: every key is the model's default, whatever config files lie around, and an override changes only
    its own key."""
    monkeypatch.chdir(tmp_path)
    for name in ("run.yaml", "emtune.yaml", "config.yaml"):
        (tmp_path / name).write_text("train:\n  max_steps: 999\n")
    defaults = flat(load_config(None))
    assert defaults == flat(RunConfig()) and defaults["train.max_steps"] != 999
    changed = flat(load_config(None, {"train.max_steps": 3}))
    assert {key for key in defaults if changed[key] != defaults[key]} == {"train.max_steps"}
    assert changed["train.max_steps"] == 3


def test_unknown_key_names_the_key_and_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "train:\n  learning_rat: 0.1\n"))
    message = str(err.value)
    assert "train.learning_rat" in message and "learning_rate" in message and "\n" not in message


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.max_steps.*'ten'"):
        load_config(write(tmp_path, "train:\n  max_steps: ten\n"))


def test_out_of_range_names_the_bound(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.top_p.*1\.5.*less than or equal to 1"):
        load_config(write(tmp_path, "train:\n  top_p: 1.5\n"))


def test_inconsistent_settings_are_rejected() -> None:
    with pytest.raises(ConfigError, match="offload_optimizer needs strategy zero2 or zero3"):
        load_config(None, {"train.offload_optimizer": True})


def test_overrides_beat_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  learning_rate: 0.1\n")
    cfg = load_config(path, dict([parse_override("train.learning_rate=1e-4"), parse_override("run.name=x")]))
    assert cfg.train.learning_rate == pytest.approx(1e-4) and cfg.run.name == "x"


def test_override_without_equals_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_override("train.learning_rate")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_cli_prints_one_line_and_exits_2_before_loading_a_model(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  rollouts_per_step: 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "emtune", "train", "--config", str(path), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "train.rollouts_per_step" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_readme_config_reference_is_fresh() -> None:
    """docs/configuration.md embeds the reference generated from the config models; regenerate it when a field
    changes."""
    from emtune.config.docs import END, START, reference_markdown

    readme = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = readme.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == reference_markdown().strip(), "run: make docs"


def test_set_null_unsets_a_key_the_file_set(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  uri: s3://bucket/runs\npipeline:\n  s3_secret: creds\n")
    assert load_config(path).store.uri == "s3://bucket/runs"
    cfg = load_config(path, dict([parse_override("store.uri=null"), parse_override("pipeline.s3_secret=null")]))
    assert cfg.store.uri is None and cfg.pipeline.s3_secret is None


def test_set_null_on_a_key_that_needs_a_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.max_steps.*None"):
        load_config(None, dict([parse_override("train.max_steps=null")]))


def test_a_partial_pipeline_step_section_keeps_the_step_defaults(tmp_path: Path) -> None:
    default = load_config(None).pipeline.train
    path = write(tmp_path, "pipeline:\n  train:\n    node_selector: {pool: a100}\n  eval:\n    cpu_request: 4\n")
    cfg = load_config(path)
    assert cfg.pipeline.train.node_selector == {"pool": "a100"}
    assert (cfg.pipeline.train.accelerator_count, cfg.pipeline.train.cpu_request) == (default.accelerator_count, "8")
    assert cfg.pipeline.train.memory_request == default.memory_request == "64Gi"
    assert (cfg.pipeline.eval.cpu_request, cfg.pipeline.eval.accelerator_count) == ("4", 1)
    # The same through --set, and null drops one default only.
    cfg = load_config(None, {"pipeline.train.cpu_request": None, "pipeline.train.node_selector": {"pool": "h100"}})
    assert cfg.pipeline.train.cpu_request is None and cfg.pipeline.train.memory_request == "64Gi"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("cpu_request", 8, "8"),
        ("cpu_limit", 0.5, "0.5"),
        ("cpu_request", "500m", "500m"),
        ("memory_request", 17179869184, "17179869184"),
        ("memory_limit", "16Gi", "16Gi"),
        ("shm_size", "1.5G", "1.5G"),
    ],
)
def test_resource_quantities_accept_numbers_as_kubernetes_does(key: str, value: object, expected: str) -> None:
    assert getattr(load_config(None, {f"pipeline.train.{key}": value}).pipeline.train, key) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cpu_request", "2Gi"),
        ("cpu_request", True),
        ("memory_request", "1.5G"),
        ("memory_request", "16gb"),
        ("shm_size", "lots"),
    ],
)
def test_resource_quantities_kfp_would_reject_fail_at_load(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"pipeline\.train\.{key}"):
        load_config(None, {f"pipeline.train.{key}": value})


def test_numeric_quantities_compile_into_the_pipeline(tmp_path: Path) -> None:
    from emtune.workflows.emtune_pipeline import compile_pipeline

    cfg = load_config(
        None,
        {
            "store.uri": "s3://b/p",
            "eval.benchmarks": ["demo-arith"],
            "pipeline.train.cpu_request": 8,
            "pipeline.train.memory_request": 2**34,
        },
    )
    text = compile_pipeline(cfg, tmp_path / "p.yaml").read_text(encoding="utf-8")
    assert "cpuRequest: 8.0" in text and "memoryRequest: 17.179869184" in text
