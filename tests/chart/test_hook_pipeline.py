"""The pipeline the registration hook compiles, for every value set: KFP 2.17's backend resolves all of it."""

from __future__ import annotations

from pathlib import Path

import yaml
from chart_render import render
from common import alias_workflows

from emtune.config import load_config
from emtune.pipeline.ir_check import check_compiled_yaml

alias_workflows()

from emtune.workflows.emtune_pipeline import compile_pipeline  # noqa: E402


def test_hook_pipeline_resolves_on_kfp(value_set: str, tmp_path: Path) -> None:
    (config_map,) = [
        obj
        for obj in render(value_set)
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].endswith("-registration")
    ]
    config = tmp_path / "pipeline.yaml"
    config.write_text(config_map["data"]["pipeline.yaml"], encoding="utf-8")
    assert yaml.safe_load(config.read_text(encoding="utf-8"))["pipeline"]  # the chart's pipeline settings
    # What `emtune pipeline sync --config pipeline.yaml` compiles in the hook; single- and multi-node runs
    # share the graph (train.nodes picks the branch per run), so both defaults are compiled.
    for nodes in (1, 2):
        package = compile_pipeline(load_config(config, {"train.nodes": nodes}), tmp_path / f"p{nodes}.yaml")
        assert check_compiled_yaml(package.read_text(encoding="utf-8")) == []


def test_pull_secrets_reach_every_pipeline_task_and_the_runner_account(tmp_path: Path) -> None:
    objects = render("default", "--set-json", 'image.pullSecrets=["mirror-creds"]')
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "emtune-registration"]
    config = tmp_path / "pipeline.yaml"
    config.write_text(config_map["data"]["pipeline.yaml"], encoding="utf-8")
    package = compile_pipeline(load_config(config, {}), tmp_path / "p.yaml")
    spec, platform = yaml.safe_load_all(package.read_text(encoding="utf-8"))
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in spec["deploymentSpec"]["executors"]:
        assert [s["secretName"] for s in executors[executor]["imagePullSecret"]] == ["mirror-creds"], executor
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    assert accounts["emtune-runner"]["imagePullSecrets"] == [{"name": "mirror-creds"}]
