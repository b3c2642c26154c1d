"""The registration hooks: the pipeline they compile resolves on KFP 2.17's backend for every value set, they
fit helm's timeout, and the pre-delete hook removes the release's schedules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def hook_jobs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["annotations"]["helm.sh/hook"]: o for o in objects if o["kind"] == "Job"}


def test_hooks_fit_helms_default_timeout(value_set: str) -> None:
    """helm waits 5 minutes for a hook by default: each Job's deadline, and the wait for KFP inside it, end first."""
    for job in hook_jobs(render(value_set)).values():
        spec = job["spec"]
        assert spec["activeDeadlineSeconds"] < 300, job["metadata"]["name"]
        args = spec["template"]["spec"]["containers"][0]["args"]
        assert 0 < float(args[args.index("--wait") + 1]) < spec["activeDeadlineSeconds"] / (spec["backoffLimit"] + 1)


def test_uninstall_removes_the_releases_schedules_unless_kept(value_set: str) -> None:
    jobs = hook_jobs(render(value_set))
    delete = jobs["pre-delete"]
    args = delete["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["pipeline", "unschedule"]
    options = dict(zip(args[2::2], args[3::2], strict=True))
    sync_args = jobs["post-install,post-upgrade"]["spec"]["template"]["spec"]["containers"][0]["args"]
    sync = dict(zip(sync_args[2::2], sync_args[3::2], strict=True))
    for same in ("--host", "--experiment", "--pipeline-name"):
        assert options[same] == sync[same]
    assert ("--namespace" in options) == ("--namespace" in sync)
    # It runs as the registration account (KFP rights in a profile), which a pre-delete hook still has.
    spec = delete["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "emtune-registration"
    assert "hook-succeeded" in delete["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    assert "pre-delete" not in hook_jobs(render(value_set, "--set", "registration.keepSchedulesOnUninstall=true"))
