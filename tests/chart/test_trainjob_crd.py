"""The TrainJob the launcher builds, against the real Trainer v2.3 CRD (schema, unknown fields, CEL rules),
and against the chart's runtime it refers to."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from chart_render import render
from k8s_schemas import validate_custom_resource

from emtune.cluster.trainjob import build_trainjob, owner_pod, trainjob_name
from emtune.config import load_config, validate_config

GPU_NODES = {
    "train.nodes": 2,
    "store.uri": "s3://ckpts/em",
    "pipeline.train": {
        "accelerator_count": 8,
        "cpu_request": "64",
        "memory_request": "900Gi",
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"pipeline.trainjob.checkpoint_volume": "ephemeral", "pipeline.trainjob.checkpoint_storage_class": "nvme"},
        {"pipeline.trainjob.runtime": "emtune", "pipeline.trainjob.runtime_kind": "TrainingRuntime"},
        {"pipeline.s3_secret": None, "pipeline.wandb_secret": None, "pipeline.train": {"accelerator_count": 0}},
    ],
)
def test_launcher_trainjob_is_valid_for_the_crd(overrides: dict[str, Any]) -> None:
    cfg = load_config(None, {**GPU_NODES, **overrides})
    name = trainjob_name("3f2a11ee-8c90-0242ac120002")
    job = build_trainjob(cfg, name=name, namespace="team", config_map=f"{name}-inputs", owner=owner_pod("p", "u"))
    validate_custom_resource(job.to_dict())


def test_the_validator_catches_what_the_api_server_would() -> None:
    """The strict check is not vacuous: unknown fields, a bad name and an out-of-range deadline fail."""
    job = build_trainjob(load_config(None, GPU_NODES), name="emtune-x", namespace="team", config_map="c").to_dict()
    for mutate, message in [
        (lambda j: j["spec"]["trainer"].update(numGPUs=8), "numGPUs"),
        (lambda j: j["metadata"].update(name="Emtune_X"), "RFC 1035"),
        (lambda j: j["spec"].update(activeDeadlineSeconds=0), "minimum"),
    ]:
        bad = copy.deepcopy(job)
        mutate(bad)
        with pytest.raises(AssertionError, match=message):
            validate_custom_resource(bad)


@pytest.mark.parametrize("value_set", ["default", "rdma"])
def test_trainjob_from_the_charts_config_targets_the_charts_runtime(value_set: str) -> None:
    """A 2-node run compiled from the release's config patches a replicated job and container the runtime has."""
    objects = render(value_set)
    (runtime,) = [o for o in objects if o["kind"] in ("TrainingRuntime", "ClusterTrainingRuntime")]
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "emtune-registration"]
    data = yaml.safe_load(config_map["data"]["pipeline.yaml"])
    cfg = validate_config({**data, "train": {"nodes": 2}})
    job = build_trainjob(cfg, name="emtune-run", namespace="team", config_map="emtune-run-inputs").to_dict()
    validate_custom_resource(job)
    ref = job["spec"]["runtimeRef"]
    assert (ref["kind"], ref["name"]) == (runtime["kind"], runtime["metadata"]["name"])
    runtime_jobs = {j["name"]: j for j in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    (patch,) = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = runtime_jobs[patch["name"]]["template"]["spec"]["template"]["spec"]
    patched = patch["template"]["spec"]["template"]["spec"]
    assert {c["name"] for c in patched["containers"]} <= {c["name"] for c in pod["containers"]}
    # The job's extra mounts and volumes do not collide with the runtime's: its /dev/shm is the runtime's, sized
    # by trainingRuntime.shmSize (a patch naming it would replace that size with the pipeline pods').
    runtime_mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
    job_mounts = {m["mountPath"] for c in patched["containers"] for m in c["volumeMounts"]}
    assert "/dev/shm" in runtime_mounts and not runtime_mounts & job_mounts
    assert not {v["name"] for v in pod["volumes"]} & {v["name"] for v in patched["volumes"]}
    (dshm,) = [v for v in pod["volumes"] if v["name"] == "dshm"]
    assert dshm["emptyDir"]["sizeLimit"] == ("64Gi" if value_set == "rdma" else "16Gi")
