"""The compiled pipeline: its graph, cluster settings and parameters, and the committed YAML being fresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from common import alias_workflows

from emtune.config import RunConfig, load_config
from emtune.errors import ConfigError, DataError
from emtune.pipeline.params import (
    PROVENANCE_PARAMS,
    compile_time_yaml,
    config_from_params,
    param_specs,
    param_values,
    resolve_config,
)

alias_workflows()

from emtune.workflows.emtune_pipeline import COMPILED_YAML, compile_pipeline  # noqa: E402

DEMO = {"eval.benchmarks": ["demo-arith", "demo-algebra"]}


def compiled(tmp_path: Path, overrides: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, kubernetes platform spec) of the pipeline compiled from a config."""
    path = compile_pipeline(load_config(None, {**DEMO, **(overrides or {})}), tmp_path / "p.yaml")
    spec, platform = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def loop_of(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (name,) = [task for task in spec["root"]["dag"]["tasks"] if task.startswith("for-loop")]
    return name, spec["components"][f"comp-{name}"]["dag"]["tasks"]


def test_committed_yaml_is_fresh(tmp_path: Path) -> None:
    fresh = compile_pipeline(RunConfig(), tmp_path / "fresh.yaml").read_text(encoding="utf-8")
    assert COMPILED_YAML.read_text(encoding="utf-8") == fresh, (
        "workflows/emtune_pipeline.yaml is stale: run `emtune pipeline compile -o workflows/emtune_pipeline.yaml`"
    )


def train_branches(spec: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The If/Else on train.nodes: its task name, and {branch condition: train task's executor}."""
    (name,) = [task for task in spec["root"]["dag"]["tasks"] if task.startswith("condition-branches")]
    branches = spec["components"][f"comp-{name}"]["dag"]["tasks"]
    found = {}
    for branch in branches.values():
        (train,) = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"].values()
        component = spec["components"][train["componentRef"]["name"]]
        found[branch["triggerPolicy"]["condition"]] = component["executorLabel"]
    return name, found


def in_pod_executor(spec: dict[str, Any]) -> str:
    """The executor of the train task that trains in its own pod (train.nodes == 1)."""
    return next(executor for condition, executor in train_branches(spec)[1].items() if condition.startswith("!"))


def train_tasks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        task
        for component in spec["components"].values()
        for task in component.get("dag", {}).get("tasks", {}).values()
        if task["componentRef"]["name"].startswith("comp-train")
    ]


def promote_condition(spec: dict[str, Any]) -> str:
    """The top-level condition that runs the promote task when promote.enabled is true."""
    (name,) = [
        name
        for name, task in spec["root"]["dag"]["tasks"].items()
        if "promote_enabled" in task.get("triggerPolicy", {}).get("condition", "")
    ]
    return name


def test_promote_runs_after_the_report_when_enabled_with_the_registry_secret(tmp_path: Path) -> None:
    spec, platform = compiled(tmp_path)
    promote = promote_condition(spec)
    condition = spec["root"]["dag"]["tasks"][promote]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--promote_enabled'] == true"
    inner = spec["components"][f"comp-{promote}"]["dag"]["tasks"]["promote"]
    assert inner["inputs"]["artifacts"]["report"]["componentInputArtifact"] == "pipelinechannel--report-report"
    assert inner["cachingOptions"] == {}  # never cached: the registry's state is not a function of the inputs
    secrets = platform["exec-promote"]["secretAsEnv"]
    registry = next(s for s in secrets if s["secretName"] == "emtune-registry")
    assert {k["envVar"] for k in registry["keyToEnv"]} >= {"MLFLOW_TRACKING_TOKEN", "EMTUNE_REGISTRY_TOKEN"}
    assert registry["optional"] is True


def test_graph_tasks_and_dependencies(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path)
    assert spec["pipelineInfo"]["name"] == "emtune-pipeline"
    tasks = spec["root"]["dag"]["tasks"]
    loop, inner = loop_of(spec)
    branches, _ = train_branches(spec)
    promote = promote_condition(spec)
    assert set(tasks) == {"prep", branches, "eval-pairs", loop, "report", promote}
    depends = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    assert depends == {
        "prep": set(),
        branches: {"prep"},
        "eval-pairs": {branches},
        loop: {"eval-pairs"},
        "report": {loop, branches},
        promote: {"report"},
    }
    assert set(inner) == {"evaluate"}
    # The fan-out iterates over the (checkpoint, step, benchmark) pairs of whichever train task ran, handed on
    # by a pass-through task (see test_pipeline_ir_check)...
    items = tasks[loop]["parameterIterator"]["items"]["inputParameter"]
    assert tasks[loop]["inputs"]["parameters"][items]["taskOutputParameter"]["producerTask"] == "eval-pairs"
    oneof = tasks["eval-pairs"]["inputs"]["parameters"]["pairs"]["taskOutputParameter"]
    assert oneof["producerTask"] == branches and "oneof" in oneof["outputParameterKey"]
    params = set(inner["evaluate"]["inputs"]["parameters"])
    assert params >= {"compile_time_config", "model", "step", "benchmark", "train_learning_rate"}
    # ...and the report collects every pair's results, with the training metrics.
    report_inputs = tasks["report"]["inputs"]["artifacts"]
    assert report_inputs["eval_results"]["taskOutputArtifact"]["producerTask"] == loop
    assert report_inputs["train_metrics"]["taskOutputArtifact"]["producerTask"] == branches
    report_outputs = spec["components"]["comp-report"]["outputDefinitions"]["artifacts"]
    assert report_outputs["html"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert report_outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


@pytest.mark.parametrize("nodes", [1, 2])
def test_multi_node_launcher_pod_requests_no_gpus(tmp_path: Path, nodes: int) -> None:
    """Whatever train.nodes was when compiled, a run with nodes > 1 takes the launcher branch (no GPUs)."""
    eight_gpus = {"accelerator_count": 8, "cpu_request": "64", "memory_request": "900Gi"}
    spec, platform = compiled(tmp_path, {"train.nodes": nodes, "store.uri": "s3://b/p", "pipeline.train": eight_gpus})
    _, branches = train_branches(spec)
    condition = "int(inputs.parameter_values['pipelinechannel--train_nodes']) > 1"
    assert set(branches) == {condition, f"!({condition})"}
    executors = spec["deploymentSpec"]["executors"]
    launcher = executors[branches[condition]]["container"]["resources"]
    in_pod = executors[branches[f"!({condition})"]]["container"]["resources"]
    assert "accelerator" not in launcher
    assert (launcher["resourceCpuRequest"], launcher["resourceMemoryRequest"]) == ("500m", "1Gi")
    assert in_pod["accelerator"]["resourceCount"] == "8" and in_pod["resourceCpuRequest"] == "64"
    # Both know their own pod, so a TrainJob they launch is owned by it.
    for executor in branches.values():
        assert {env["name"]: env["fieldPath"] for env in platform[executor]["fieldPathAsEnv"]} == {
            "EMTUNE_POD_NAME": "metadata.name",
            "EMTUNE_POD_UID": "metadata.uid",
        }


@pytest.mark.parametrize("parallelism", [1, 7])
def test_parallelism_bounds_the_fan_out(tmp_path: Path, parallelism: int) -> None:
    spec, _ = compiled(tmp_path, {"pipeline.parallelism": parallelism})
    loop, _ = loop_of(spec)
    assert spec["root"]["dag"]["tasks"][loop]["iteratorPolicy"] == {"parallelismLimit": parallelism}


def test_caching_and_retries(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, {"pipeline.eval_retries": 3, "pipeline.eval_retry_backoff_s": 30})
    tasks = spec["root"]["dag"]["tasks"]
    _, inner = loop_of(spec)
    assert tasks["prep"]["cachingOptions"] == {"enableCache": True}
    assert inner["evaluate"]["cachingOptions"] == {"enableCache": True}
    for train in train_tasks(spec):
        assert not train["cachingOptions"].get("enableCache", False)
        assert "retryPolicy" not in train
    assert inner["evaluate"]["retryPolicy"] == {
        "backoffDuration": "30s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
        "maxRetryCount": 3,
    }


def test_accelerators_resources_images(tmp_path: Path) -> None:
    spec, _ = compiled(
        tmp_path,
        {
            "pipeline.train": {"accelerator_type": "nvidia.com/gpu", "accelerator_count": 8, "memory_limit": "900Gi"},
            "pipeline.eval": {"accelerator_type": "amd.com/gpu", "accelerator_count": 1},
            "pipeline.eval_image": "registry.example/eval:9",
        },
    )
    executors = spec["deploymentSpec"]["executors"]
    in_pod = in_pod_executor(spec)
    train = executors[in_pod]["container"]
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["resources"]["accelerator"]["resourceCount"] == "8"
    assert train["resources"]["resourceMemoryLimit"] == "900Gi"
    assert executors["exec-evaluate"]["container"]["resources"]["accelerator"]["resourceType"] == "amd.com/gpu"
    assert "accelerator" not in executors["exec-prep"]["container"].get("resources", {})
    assert executors["exec-evaluate"]["container"]["image"] == "registry.example/eval:9"
    assert executors[in_pod]["container"]["image"].startswith("ghcr.io/emtune/emtune-train:")
    for executor in executors.values():
        container = executor["container"]
        assert not container["image"].startswith("python:")  # never KFP's default image
        assert "pip install" not in " ".join(container["command"])  # the images carry emtune and kfp


def test_secrets_as_env_and_shm(tmp_path: Path) -> None:
    spec, platform = compiled(tmp_path, {"pipeline.train": {"accelerator_count": 2, "shm_size": "8Gi"}})
    in_pod = in_pod_executor(spec)

    def secrets(executor: str) -> dict[str, list[str]]:
        found = platform.get(executor, {}).get("secretAsEnv", [])
        return {s["secretName"]: sorted(k["envVar"] for k in s["keyToEnv"]) for s in found}

    s3 = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    for train in train_branches(spec)[1].values():
        assert secrets(train) == {"emtune-s3": s3, "emtune-wandb": ["WANDB_API_KEY"]}
    assert secrets("exec-evaluate") == {"emtune-s3": s3}
    assert secrets("exec-prep") == {"emtune-s3": s3}
    assert secrets("exec-report") == {"emtune-s3": s3}  # it puts the report beside the steps in the store

    def shm(executor: str) -> list[dict[str, str]]:
        return [m for m in platform.get(executor, {}).get("emptyDirMounts", []) if m["mountPath"] == "/dev/shm"]

    assert shm(in_pod) == [{"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "8Gi", "volumeName": "dshm"}]
    assert shm("exec-evaluate") == []  # one accelerator: no NCCL shm needed


def test_secret_key_names_and_one_secret_for_both(tmp_path: Path) -> None:
    keys = {"aws_access_key_id": "ak", "aws_secret_access_key": "sk", "wandb_api_key": "wk"}
    spec, platform = compiled(
        tmp_path, {"pipeline.s3_secret": "creds", "pipeline.wandb_secret": "creds", "pipeline.secret_keys": keys}
    )
    (found,) = platform[in_pod_executor(spec)]["secretAsEnv"]
    assert found["secretName"] == "creds"
    assert {k["secretKey"]: k["envVar"] for k in found["keyToEnv"]} == {
        "ak": "AWS_ACCESS_KEY_ID",
        "sk": "AWS_SECRET_ACCESS_KEY",
        "wk": "WANDB_API_KEY",
    }


def test_parameters_come_from_the_run_config_model(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, {"train.learning_rate": 1e-3})
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {p.name for p in param_specs()} | set(PROVENANCE_PARAMS)
    assert all(params[name]["defaultValue"] == "" for name in PROVENANCE_PARAMS)
    assert not any(name.startswith("pipeline_") for name in params)  # compile-time settings are not parameters
    lr = params["train_learning_rate"]
    assert (lr["parameterType"], lr["defaultValue"]) == ("NUMBER_DOUBLE", 1e-3)
    assert lr["description"] == RunConfig.model_fields["train"].annotation.model_fields["learning_rate"].description
    assert params["eval_benchmarks"]["parameterType"] == "LIST"
    assert params["eval_benchmarks"]["defaultValue"] == ["demo-arith", "demo-algebra"]
    assert params["train_lora_r"]["parameterType"] == "NUMBER_INTEGER"
    assert params["store_uri"]["parameterType"] == "STRING" and params["store_uri"]["defaultValue"] == ""


MULTI_LINE = 'A train leaves at 3 p.m.\nkey=value lines: train.max_steps=999\n\n  {"json": 1} "quoted" \\boxed{}'


def test_parameters_round_trip_into_the_same_config() -> None:
    cfg = load_config(
        None,
        {
            **DEMO,
            "store.uri": "s3://bucket/runs",
            "store.keep_last": 3,
            "train.samples_per_prompt": 4,
            "train.rollouts_per_step": 8,
            "train.learning_rate": 5e-6,
            "train.lora.enabled": True,
            "train.lora.target_modules": ["q_proj", "v_proj"],
            "eval.sources": {"demo-arith": "/data/arith.jsonl"},
            "model.path": "Qwen/Qwen2.5-Math-7B",
            "pipeline.parallelism": 9,
            "data.text": MULTI_LINE,
            "run.name": "line one\nline two",
        },
    )
    # Values as KFP hands them to a component (JSON: numbers may come back as floats).
    values = json.loads(json.dumps(param_values(cfg)))
    assert resolve_config(compile_time_yaml(cfg), values) == cfg


def test_bad_parameter_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train\.max_steps"):
        resolve_config(compile_time_yaml(RunConfig()), {"train_max_steps": 0})
    with pytest.raises(ConfigError, match=r"\['train_no_such_key'\] name no config key"):
        resolve_config(compile_time_yaml(RunConfig()), {"train_no_such_key": 1})


def test_every_step_gets_every_run_parameter_as_an_input_of_its_own(tmp_path: Path) -> None:
    """No parameter is formatted into a text input (a newline in one broke every step): each is passed on."""
    spec, _ = compiled(tmp_path)
    names = {p.name for p in param_specs()}
    _, inner = loop_of(spec)
    tasks = [spec["root"]["dag"]["tasks"]["prep"], *train_tasks(spec), inner["evaluate"]]
    assert len(tasks) == 4  # prep, the two train branches (one node / several), evaluate
    for task in tasks:
        name = task["componentRef"]["name"]
        inputs = spec["components"][name]["inputDefinitions"]["parameters"]
        assert names <= set(inputs), name
        passed = task["inputs"]["parameters"]
        for param in names:
            source = passed[param]
            assert "runtimeValue" not in source, (name, param)
            assert source.get("componentInputParameter", "").endswith(param), (name, param)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"eval.benchmarks": ["demo-arith", "no-such-bench"]}, DataError, "no-such-bench"),
        ({"pipeline.eval_steps": []}, ConfigError, r"pipeline\.eval_steps"),
        ({"pipeline.parallelism": 0}, ConfigError, r"pipeline\.parallelism"),
        ({"train.nodes": 0}, ConfigError, r"train\.nodes"),
    ],
)
def test_bad_input_fails_at_compile_time(tmp_path: Path, overrides: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        compile_pipeline(load_config(None, {**DEMO, **overrides}), tmp_path / "p.yaml")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "p.yaml").exists()


def test_config_from_params_reads_back_what_kfp_reports() -> None:
    cfg = load_config(None, {"train.learning_rate": 3e-4, "eval.limit": 5, "store.uri": "s3://b/p"})
    values = param_values(cfg)
    # KFP reports numbers as numbers and strings as strings; provenance and unknown names are ignored.
    reported = {**values, "provenance_trigger": "dashboard", "not_a_parameter": "x"}
    assert config_from_params(reported).model_dump(exclude={"pipeline"}) == cfg.model_dump(exclude={"pipeline"})


def test_pull_secrets_reach_every_pipeline_task(tmp_path: Path) -> None:
    spec, platform = compiled(tmp_path, {"pipeline.image_pull_secrets": ["mirror-creds"]})
    for executor in spec["deploymentSpec"]["executors"]:
        assert [s["secretName"] for s in platform[executor]["imagePullSecret"]] == ["mirror-creds"], executor
    _, platform = compiled(tmp_path)
    assert not any("imagePullSecret" in config for config in platform.values())


def test_train_and_eval_pods_keep_their_data_on_a_scratch_volume(tmp_path: Path) -> None:
    spec, platform = compiled(tmp_path)
    executors = spec["deploymentSpec"]["executors"]
    _, inner = loop_of(spec)
    eval_exec = spec["components"][inner["evaluate"]["componentRef"]["name"]]["executorLabel"]
    sizes = {eval_exec: "100Gi", in_pod_executor(spec): "500Gi"}
    for executor, size in sizes.items():
        (volume,) = platform[executor]["emptyDirMounts"]
        assert volume == {"mountPath": "/scratch", "sizeLimit": size, "volumeName": "scratch"}
        env = {e["name"]: e["value"] for e in executors[executor]["container"]["env"]}
        assert env["EMTUNE_SCRATCH"] == "/scratch" and env["TMPDIR"] == "/scratch"
        assert {env[k] for k in ("HF_HOME", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR")} <= {
            f"/scratch/{d}" for d in ("hf", "vllm", "triton")
        }
    # The launcher pod only watches the TrainJob; prep and report stay small.
    others = set(platform) - set(sizes)
    assert not any("genericEphemeralVolume" in platform[e] or "emptyDirMounts" in platform[e] for e in others)
    # An emptyDir with a size limit instead, where no storage class provisions volumes.
    _, platform = compiled(tmp_path, {"pipeline.scratch": {"volume": "emptyDir", "eval_size": "80Gi"}})
    assert platform[eval_exec]["emptyDirMounts"] == [
        {"mountPath": "/scratch", "sizeLimit": "80Gi", "volumeName": "scratch"}
    ]


def gib(quantity: str) -> float:
    assert quantity.endswith("Gi"), quantity
    return float(quantity[:-2])


def test_default_scratch_fits_the_7b_recipe() -> None:
    """configs/paper.yaml (Qwen2.5-Math-7B, 7.62e9 parameters, bf16, ZeRO-2, a step folder every step): what a
    single-node train pod and an eval pod keep on disk, against the default sizes (docs/deploy.md)."""
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "paper.yaml", {})
    params, gb = 7.62e9, 2**30
    step_folder = params * 2 / gb  # bf16 safetensors
    resume_state = params * (4 + 4 + 4) / gb  # fp32 master weights + Adam's two moments (ZeRO shards add up)
    saved = cfg.train.max_steps // cfg.train.save_every
    caches = step_folder + 10  # the base model in HF_HOME, vLLM/Triton/inductor caches
    train_needs = saved * step_folder + (cfg.train.keep_state + 1) * resume_state + caches  # +1: while rotating
    eval_needs = step_folder + caches  # one pulled checkpoint (or the base model) and the same caches
    assert train_needs < gib(cfg.pipeline.scratch.train_size), train_needs
    assert eval_needs < gib(cfg.pipeline.scratch.eval_size), eval_needs
    # A multi-node run's nodes hold the same on their run volume.
    assert train_needs < gib(cfg.pipeline.trainjob.checkpoint_size), train_needs
