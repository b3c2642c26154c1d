"""The multi-node TrainJob and its inputs ConfigMap, validated against the Trainer 2.3 API models."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeflow_trainer_api import models as m

from emtune.cluster.trainjob import (
    MAX_INPUT_BYTES,
    NODE_RUN_DIR,
    build_inputs_config_map,
    build_trainjob,
    node_run_config,
    owner_pod,
    trainjob_name,
)
from emtune.config import RunConfig, dump_config, load_config, validate_config
from emtune.errors import ConfigError

TWO_NODES = {
    "train.nodes": 2,
    "store.uri": "s3://ckpts/em",
    "pipeline.train": {
        "accelerator_type": "nvidia.com/gpu",
        "accelerator_count": 4,
        "cpu_request": "16",
        "memory_request": "200Gi",
        "memory_limit": "240Gi",
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "shm_size": "32Gi",
    },
    "pipeline.train_image": "registry.example/emtune-train:1.2.3",
}


@pytest.fixture
def cfg() -> RunConfig:
    return load_config(None, TWO_NODES)


def test_two_node_trainjob_round_trips_through_the_api_models(cfg: RunConfig) -> None:
    job = build_trainjob(cfg, name="emtune-abc", namespace="team-a", config_map="emtune-abc-inputs")
    body = job.to_dict()
    # The API models re-validate the wire form strictly (types, required fields, enum-like names).
    assert m.TrainerV1alpha1TrainJob.from_dict(body).to_dict() == body
    assert (body["apiVersion"], body["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    assert body["metadata"]["namespace"] == "team-a"
    spec = body["spec"]
    assert spec["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed",
    }
    trainer = spec["trainer"]
    assert trainer["image"] == "registry.example/emtune-train:1.2.3"
    assert trainer["command"] == [
        "torchrun",
        "-m",
        "emtune",
        "train",
        "--config",
        "/etc/emtune/run.yaml",
        "--resume",
    ]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 4)
    assert trainer["resourcesPerNode"] == {
        "limits": {"memory": "240Gi", "nvidia.com/gpu": "4"},
        # The run volume (an emptyDir by default) is the node's own disk: requested, so the node has it.
        "requests": {"cpu": "16", "memory": "200Gi", "ephemeral-storage": "500Gi"},
    }
    # Caches go to that volume too, not the container's layer.
    env = {var["name"]: var.get("value") for var in trainer["env"]}
    assert env["HF_HOME"] == "/var/lib/emtune/cache/hf" and env["TRITON_CACHE_DIR"] == "/var/lib/emtune/cache/triton"


def test_secrets_reach_the_nodes_as_references_only(cfg: RunConfig) -> None:
    env = build_trainjob(cfg, name="j", namespace="n", config_map="c").to_dict()["spec"]["trainer"]["env"]
    by_name = {var["name"]: var for var in env}
    for key, secret in [
        ("AWS_ACCESS_KEY_ID", "emtune-s3"),
        ("AWS_SECRET_ACCESS_KEY", "emtune-s3"),
        ("WANDB_API_KEY", "emtune-wandb"),
    ]:
        assert by_name[key] == {
            "name": key,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
        }
    without = cfg.model_copy(deep=True)
    without.pipeline.wandb_secret = None
    env = build_trainjob(without, name="j", namespace="n", config_map="c").to_dict()["spec"]["trainer"]["env"]
    assert "WANDB_API_KEY" not in {var["name"] for var in env}


def node_pod(cfg: RunConfig) -> dict[str, Any]:
    body = build_trainjob(cfg, name="j", namespace="n", config_map="j-inputs").to_dict()
    (patch,) = body["spec"]["runtimePatches"]
    (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert replicated["name"] == "node"
    pod: dict[str, Any] = replicated["template"]["spec"]["template"]["spec"]
    return pod


def test_node_pods_get_inputs_a_run_volume_and_scheduling(cfg: RunConfig) -> None:
    pod = node_pod(cfg)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["emtune-inputs"]["configMap"] == {"name": "j-inputs"}
    (container,) = pod["containers"]
    assert container["name"] == "node"
    assert {mount["mountPath"] for mount in container["volumeMounts"]} == {"/etc/emtune", "/var/lib/emtune"}
    assert NODE_RUN_DIR.startswith("/var/lib/emtune/")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "imagePullSecrets" not in pod


def test_node_shm_is_the_runtimes_unless_set(cfg: RunConfig) -> None:
    """A patch that names dshm replaces the runtime's volume: pipeline.train.shm_size (the pipeline pods') must
    not override the chart's trainingRuntime.shmSize."""
    assert "dshm" not in {v["name"] for v in node_pod(cfg)["volumes"]}
    cfg.pipeline.trainjob.shm_size = "64Gi"
    pod = node_pod(cfg)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert "/dev/shm" in {mount["mountPath"] for mount in pod["containers"][0]["volumeMounts"]}


def test_node_pods_pull_with_the_configured_secrets(cfg: RunConfig) -> None:
    cfg.pipeline.image_pull_secrets = ["mirror-creds"]
    assert node_pod(cfg)["imagePullSecrets"] == [{"name": "mirror-creds"}]


def test_inputs_config_map_carries_the_node_config_and_prompts(cfg: RunConfig) -> None:
    job = build_trainjob(cfg, name="j", namespace="n", config_map="j-inputs")
    prompts = bytes(range(256)) * 4
    cm = build_inputs_config_map(cfg, prompts, name="j-inputs", namespace="n", owner=job, owner_uid="u-1").to_dict()
    assert m.IoK8sApiCoreV1ConfigMap.from_dict(cm).to_dict() == cm
    node_cfg = validate_config(yaml.safe_load(cm["data"]["run.yaml"]))
    assert node_cfg.train.prompts == "/etc/emtune/prompts.parquet"
    assert str(node_cfg.run.out_dir) == NODE_RUN_DIR
    assert node_cfg.train.nodes == 2 and node_cfg.store.uri == "s3://ckpts/em"
    assert base64.b64decode(cm["binaryData"]["prompts.parquet"]) == prompts
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_prompt_set_too_large_for_a_config_map(cfg: RunConfig) -> None:
    job = build_trainjob(cfg, name="j", namespace="n", config_map="j-inputs")
    with pytest.raises(ConfigError, match="too large for a multi-node TrainJob"):
        build_inputs_config_map(cfg, b"x" * MAX_INPUT_BYTES, name="c", namespace="n", owner=job, owner_uid="u")


@pytest.mark.parametrize("uri", [None, "file:///data/ckpts", "/data/ckpts"])
def test_multi_node_needs_an_s3_store(uri: str | None) -> None:
    cfg = load_config(None, {"train.nodes": 2, "store.uri": uri})
    with pytest.raises(ConfigError, match="multi-node training needs s3://"):
        node_run_config(cfg)


def test_zero_nodes_is_rejected_by_the_config() -> None:
    with pytest.raises(ConfigError, match=r"train\.nodes"):
        load_config(None, {"train.nodes": 0})


@pytest.mark.parametrize("run_id", ["3f2a-11ee-8c90-0242ac120002-very-long-pipeline-run-uuid", "Run_ID.With:Odd/Chars"])
def test_trainjob_name_is_a_dns_label(run_id: str) -> None:
    name = trainjob_name(run_id)
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 40


def test_a_restarted_node_resumes_from_the_store(
    cfg: RunConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A pod the Trainer restarts reruns the TrainJob's command; emtune's CLI must read it as a resume."""
    from emtune.cli import app
    from emtune.train import trainer as trainer_module

    command = build_trainjob(cfg, name="j", namespace="n", config_map="c").to_dict()["spec"]["trainer"]["command"]
    assert command[:3] == ["torchrun", "-m", "emtune"]
    config_file = tmp_path / "run.yaml"
    config_file.write_text(dump_config(node_run_config(cfg)), encoding="utf-8")
    args = [str(config_file) if arg == "/etc/emtune/run.yaml" else arg for arg in command[3:]]
    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def fake_trainer(run_cfg: RunConfig, resume: bool = False) -> None:
        seen.update(resume=resume, out_dir=str(run_cfg.run.out_dir), store=run_cfg.store.uri)
        raise Stop

    monkeypatch.setattr(trainer_module, "Trainer", fake_trainer)
    with pytest.raises(Stop):
        app(args, standalone_mode=False)
    assert seen == {"resume": True, "out_dir": NODE_RUN_DIR, "store": "s3://ckpts/em"}


def test_job_is_owned_by_its_launcher_and_bounded_in_time(cfg: RunConfig) -> None:
    job = build_trainjob(cfg, name="j", namespace="n", config_map="c", owner=owner_pod("train-pod-x", "pod-uid"))
    body = job.to_dict()
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "train-pod-x", "uid": "pod-uid"}
    ]
    assert body["spec"]["activeDeadlineSeconds"] == cfg.pipeline.trainjob.timeout_s
    template = body["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    metadata = template["template"]["spec"]["template"]["metadata"]
    assert metadata["labels"]["sidecar.istio.io/inject"] == "false"
    assert metadata["annotations"]["sidecar.istio.io/inject"] == "false"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, {"emptyDir": {"sizeLimit": "500Gi"}}),
        (
            {"checkpoint_volume": "ephemeral", "checkpoint_size": "500Gi", "checkpoint_storage_class": "fast-nvme"},
            {
                "ephemeral": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "fast-nvme",
                            "resources": {"requests": {"storage": "500Gi"}},
                        }
                    }
                }
            },
        ),
    ],
)
def test_node_checkpoints_live_on_a_sized_volume(settings: dict[str, str], expected: dict[str, object]) -> None:
    cfg = load_config(None, {**TWO_NODES, **{f"pipeline.trainjob.{k}": v for k, v in settings.items()}})
    body = build_trainjob(cfg, name="j", namespace="n", config_map="c").to_dict()
    pod = body["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    volumes = {v["name"]: v for v in pod["template"]["spec"]["template"]["spec"]["volumes"]}
    assert {k: v for k, v in volumes["emtune-run"].items() if k != "name"} == expected


def test_secret_key_names_follow_the_config() -> None:
    keys = {"aws_access_key_id": "access-key", "aws_secret_access_key": "secret-key", "wandb_api_key": "api-key"}
    cfg = load_config(None, {**TWO_NODES, "pipeline.s3_secret": "team-s3", "pipeline.secret_keys": keys})
    env = build_trainjob(cfg, name="j", namespace="n", config_map="c").to_dict()["spec"]["trainer"]["env"]
    refs = {var["name"]: var["valueFrom"]["secretKeyRef"] for var in env if "valueFrom" in var}
    assert refs["AWS_ACCESS_KEY_ID"] == {"name": "team-s3", "key": "access-key", "optional": True}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": "team-s3", "key": "secret-key", "optional": True}
    assert refs["WANDB_API_KEY"] == {"name": "emtune-wandb", "key": "api-key", "optional": True}


def test_node_pods_get_the_trainers_stop_grace(cfg: RunConfig) -> None:
    """Kubernetes kills a pod terminationGracePeriodSeconds after SIGTERM: the trainer's grace must fit inside."""
    assert node_pod(cfg)["terminationGracePeriodSeconds"] == 30  # ceil(20.0) + 10
    cfg.train.stop_grace_s = 45.5
    assert node_pod(cfg)["terminationGracePeriodSeconds"] == 56
