"""`emtune pipeline submit`: the request `--dry-run` shows, and what `submit` sends for it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from common import alias_workflows, run_cli

from emtune.config import load_config
from emtune.errors import ConfigError, PipelineError
from emtune.pipeline.params import PROVENANCE_PARAMS, param_values, provenance_values
from emtune.runs.local import current_user
from emtune.runs.submit import build_request, cron_expression, submit

alias_workflows()

CLUSTER_RUN = {
    "run": {"name": "paper"},
    "store": {"uri": "s3://ckpts/emtune"},
    "eval": {"benchmarks": ["demo-arith"]},
    "train": {"learning_rate": 2e-5, "max_steps": 10},
}


def test_dry_run_prints_pipeline_and_request_without_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(CLUSTER_RUN), encoding="utf-8")
    # Port 9 on loopback has no KFP server: a dry run must not try to reach it.
    argv = ["pipeline", "submit", "--dry-run", "--config", str(config), "--host", "http://127.0.0.1:9"]
    argv += ["--namespace", "team-a", "--experiment", "nightly", "--recurring", "0 3 * * *"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    spec, platform, shown = yaml.safe_load_all(out)
    assert spec["pipelineInfo"]["name"] == "emtune-pipeline"
    assert "kubernetes" in platform["platforms"]
    request = shown["request"]
    assert request["pipeline"] == "emtune-pipeline"
    assert request["pipeline_version"].startswith("emtune-pipeline-")
    assert (request["namespace"], request["experiment"]) == ("team-a", "nightly")
    assert request["run_name"].startswith("paper-")
    assert request["recurring"] == {"cron": "0 0 3 * * *", "max_concurrency": 1, "no_catchup": True}
    provenance = {name: request["parameters"].pop(name) for name in PROVENANCE_PARAMS}
    assert provenance["provenance_trigger"] == "schedule" and provenance["provenance_parent_run"] == ""
    assert request["parameters"] == param_values(load_config(config))
    assert request["parameters"]["store_uri"] == "s3://ckpts/emtune"
    assert set(request["parameters"]) | set(provenance) == set(spec["root"]["inputDefinitions"]["parameters"])


def test_submit_needs_an_s3_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**CLUSTER_RUN, "store": {"uri": "file:///tmp/ckpts"}}), encoding="utf-8")
    code, _, err = run_cli(["pipeline", "submit", "--dry-run", "--config", str(config)], capsys)
    assert code == 2
    assert "store.uri = 'file:///tmp/ckpts'" in err and "s3://" in err


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["eval.benchmarks=[no-such-bench]"], "no-such-bench"),
        (["pipeline.eval_steps=[]"], "pipeline.eval_steps"),
        (["pipeline.parallelism=0"], "pipeline.parallelism"),
        (["train.nodes=0"], "train.nodes"),
    ],
)
def test_bad_input_fails_at_submit_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[str], message: str
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(CLUSTER_RUN), encoding="utf-8")
    argv = ["pipeline", "submit", "--dry-run", "--config", str(config)]
    argv += [arg for item in sets for arg in ("--set", item)]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_cron_expressions() -> None:
    assert cron_expression("*/15 * * * *") == "0 */15 * * * *"
    assert cron_expression("30 0 6 * * 1-5") == "30 0 6 * * 1-5"
    assert cron_expression("0 0 3 * * MON-FRI") == "0 0 3 * * MON-FRI"
    assert cron_expression("@daily") == "@daily"
    with pytest.raises(ConfigError, match="not a valid cron schedule"):
        cron_expression("daily")


@pytest.mark.parametrize(
    "text",
    [
        "0 61 * * *",
        "0 0 25 * * *",
        "0 3 * *",
        "0 0 3 * * * 2027",
        "0 0 3 31 2-13 *",
        "0 0 L * * *",
        "0 0 3 * * 1#2",
        "H 0 3 * * *",
        "@every-day",
    ],
)
def test_invalid_cron_schedules_fail_at_submit(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="not a valid cron schedule"):
        cron_expression(text)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(CLUSTER_RUN), encoding="utf-8")
    code, out, err = run_cli(["pipeline", "submit", "--dry-run", "--config", str(config), "--recurring", text], capsys)
    assert code == 2 and not out and "not a valid cron schedule" in err and "Traceback" not in err


@pytest.mark.parametrize("source", ["./data/problems.parquet", "/abs/problems.jsonl", "file:///data/p.parquet"])
def test_a_local_data_source_cannot_be_submitted_to_a_cluster(source: str, tmp_path: Path) -> None:
    cfg = load_config(None, {"store.uri": "s3://b/p", "eval.benchmarks": ["demo-arith"], "data.source": source})
    with pytest.raises(ConfigError, match=r"data\.source = .*s3://"):
        build_request(cfg, tmp_path / "p.yaml", host="http://kfp")
    for remote in ("s3://bucket/problems.parquet", "hf://org/set@train"):
        cfg.data.source = remote
        assert build_request(cfg, tmp_path / "p.yaml", host="http://kfp").params["data_source"] == remote


def test_an_eval_sources_key_that_names_no_benchmark_fails_before_compiling(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        {"store.uri": "s3://b/p", "eval.benchmarks": ["demo-arith"], "eval.sources": {"demo-arithm": "s3://b/sets/"}},
    )
    with pytest.raises(ConfigError, match=r"eval\.sources key 'demo-arithm' names no benchmark; known: .*demo-arith"):
        build_request(cfg, tmp_path / "p.yaml", host="http://kfp")
    assert not (tmp_path / "p.yaml").exists()


class RecordingKfp:
    """Stands in for kfp.Client's pipeline/run endpoints (no KFP server here) and records every call."""

    def __init__(self, existing_pipeline: str | None, namespace: str | None = None) -> None:
        self.existing, self.namespace = existing_pipeline, namespace  # the namespace the pipeline lives in
        self.versions = [SimpleNamespace(display_name="emtune-pipeline", pipeline_version_id="v-first")]
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _record(self, call: str, **kwargs: Any) -> None:
        self.calls.append((call, kwargs))

    def list_pipelines(self, filter: str, namespace: str | None, page_size: int) -> Any:
        (predicate,) = json.loads(filter)["predicates"]
        if self.existing is None or namespace != self.namespace:  # multi-user KFP: namespaced pipelines
            return SimpleNamespace(pipelines=None)
        found = SimpleNamespace(display_name=predicate["stringValue"], pipeline_id=self.existing)
        return SimpleNamespace(pipelines=[found])

    def upload_pipeline(self, path: str, pipeline_name: str, namespace: str | None) -> Any:
        self._record("upload_pipeline", path=path, pipeline_name=pipeline_name, namespace=namespace)
        return SimpleNamespace(pipeline_id="p-new")

    def list_pipeline_versions(self, pipeline_id: str, page_size: int, **query: str) -> Any:
        if "filter" in query:
            (predicate,) = json.loads(query["filter"])["predicates"]
            wanted = [v for v in self.versions if v.display_name == predicate["stringValue"]]
            return SimpleNamespace(pipeline_versions=wanted or None)
        return SimpleNamespace(pipeline_versions=self.versions[-1:])  # sort_by created_at desc

    def upload_pipeline_version(self, path: str, pipeline_version_name: str, pipeline_id: str) -> Any:
        self._record("upload_pipeline_version", name=pipeline_version_name, pipeline_id=pipeline_id)
        return SimpleNamespace(pipeline_version_id="v-next")

    def create_experiment(self, name: str, namespace: str | None) -> Any:
        return SimpleNamespace(experiment_id="e-1")

    def run_pipeline(self, **kwargs: Any) -> Any:
        self._record("run_pipeline", **kwargs)
        return SimpleNamespace(run_id="r-1")

    def create_recurring_run(self, **kwargs: Any) -> Any:
        self._record("create_recurring_run", **kwargs)
        return SimpleNamespace(recurring_run_id="rr-1")


def test_submit_uploads_a_new_version_and_starts_a_run(tmp_path: Path) -> None:
    cfg = load_config(None, {"store.uri": "s3://b/p", "eval.benchmarks": ["demo-arith"]})
    request = build_request(cfg, tmp_path / "p.yaml", host="http://kfp.example/", run_name="try-1")
    client = RecordingKfp(existing_pipeline="p-old")
    assert submit(request, client) == "http://kfp.example/#/runs/details/r-1"
    (upload, upload_args), (run, run_args) = client.calls
    assert (upload, upload_args["pipeline_id"]) == ("upload_pipeline_version", "p-old")
    assert run == "run_pipeline"
    assert (run_args["pipeline_id"], run_args["version_id"], run_args["job_name"]) == ("p-old", "v-next", "try-1")
    assert run_args["params"] == {**param_values(cfg), **provenance_values("manual", current_user(), None)}


def test_submit_recurring_run_uploads_the_pipeline_once(tmp_path: Path) -> None:
    cfg = load_config(None, {"store.uri": "s3://b/p", "eval.benchmarks": ["demo-arith"]})
    request = build_request(cfg, tmp_path / "p.yaml", host="http://kfp.example", recurring="0 2 * * 0")
    client = RecordingKfp(existing_pipeline=None)
    assert submit(request, client) == "http://kfp.example/#/recurringrun/details/rr-1"
    (upload, _), (recurring, args) = client.calls
    assert upload == "upload_pipeline"
    assert recurring == "create_recurring_run"
    assert (args["cron_expression"], args["max_concurrency"], args["no_catchup"]) == ("0 0 2 * * 0", 1, True)
    assert (args["pipeline_id"], args["version_id"]) == ("p-new", "v-first")


def test_submit_uploads_the_pipeline_into_its_namespace(tmp_path: Path) -> None:
    """Multi-user KFP keeps pipelines per namespace: another profile's pipeline of that name is not this one."""
    cfg = load_config(None, {"store.uri": "s3://b/p", "eval.benchmarks": ["demo-arith"]})
    request = build_request(cfg, tmp_path / "p.yaml", host="http://kfp.example", namespace="team-a")
    client = RecordingKfp(existing_pipeline="p-shared", namespace=None)
    submit(request, client)
    (upload, args), (_, run_args) = client.calls
    assert (upload, args["namespace"]) == ("upload_pipeline", "team-a") and run_args["pipeline_id"] == "p-new"


def test_submit_names_its_version_or_runs_an_existing_one(tmp_path: Path) -> None:
    cfg = load_config(None, {"store.uri": "s3://b/p", "eval.benchmarks": ["demo-arith"]})
    named = build_request(cfg, tmp_path / "p.yaml", host="http://kfp.example", version_name="try-lr-3e-5")
    client = RecordingKfp(existing_pipeline="p-old")
    submit(named, client)
    assert client.calls[0] == ("upload_pipeline_version", {"name": "try-lr-3e-5", "pipeline_id": "p-old"})
    reuse = build_request(cfg, tmp_path / "p.yaml", host="http://kfp.example", use_version="emtune-pipeline")
    client = RecordingKfp(existing_pipeline="p-old")
    submit(reuse, client)
    ((run, run_args),) = client.calls  # nothing uploaded
    assert (run, run_args["version_id"]) == ("run_pipeline", "v-first")
    with pytest.raises(PipelineError, match="has no version 'nope'"):
        submit(build_request(cfg, tmp_path / "p.yaml", host="http://kfp.example", use_version="nope"), client)


def test_links_open_kfps_ui_not_its_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None, {"store.uri": "s3://b/p", "eval.benchmarks": ["demo-arith"]})
    request = build_request(cfg, tmp_path / "p.yaml", host="http://ml-pipeline.kubeflow:8888")
    monkeypatch.setenv("EMTUNE_KFP_UI_URL", "https://kubeflow.example.com/pipeline/")
    assert submit(request, RecordingKfp(existing_pipeline="p-old")) == (
        "https://kubeflow.example.com/pipeline/#/runs/details/r-1"
    )
