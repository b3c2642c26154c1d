"""Pipeline and cluster settings (`pipeline:` section): fixed when the pipeline is compiled.

Hyper-parameters of the steps are run-time pipeline parameters; these settings shape the compiled graph
itself (fan-out width, images, pod resources, secrets, retries, the multi-node TrainJob).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from emtune.cluster.images import EVAL_IMAGE, TRAIN_IMAGE
from emtune.config_base import Section

# The quantities KFP's compiler accepts for a task (kfp.dsl.PipelineTask's own checks), so a config that loads
# also compiles: CPU as cores (2, 0.5) or millicores (500m); memory as bytes or with a unit suffix (16Gi).
CPU_QUANTITY = r"^([0-9]*[.])?[0-9]+m?$"
MEMORY_QUANTITY = r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$"
# A Kubernetes quantity (an emptyDir size limit): 16Gi, 512M, 1.5G, 1e9.
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"


def _number_as_text(value: Any) -> Any:
    """YAML reads `cpu_request: 8` as a number; Kubernetes takes it, so take it too (as the text 8)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


CpuQuantity = Annotated[
    Annotated[str, StringConstraints(pattern=CPU_QUANTITY)] | None, BeforeValidator(_number_as_text)
]
MemoryQuantity = Annotated[
    Annotated[str, StringConstraints(pattern=MEMORY_QUANTITY)] | None, BeforeValidator(_number_as_text)
]


class Toleration(Section):
    key: str | None = Field(None, description="Taint key to tolerate; unset with operator Exists: every taint.")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="How the taint value is matched.")
    value: str | None = Field(None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; unset: all effects."
    )


class StepResources(Section):
    accelerator_type: str = Field("nvidia.com/gpu", min_length=1, description="Accelerator resource name.")
    accelerator_count: int = Field(0, ge=0, le=64, description="Accelerators per pod; 0: CPU only.")
    cpu_request: CpuQuantity = Field(None, description="CPU request: cores or millicores, e.g. 8, 0.5 or 500m.")
    cpu_limit: CpuQuantity = Field(None, description="CPU limit: cores or millicores.")
    memory_request: MemoryQuantity = Field(None, description="Memory request: bytes or e.g. 16Gi, 512M.")
    memory_limit: MemoryQuantity = Field(None, description="Memory limit: bytes or e.g. 16Gi, 512M.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pod must match.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pod tolerates.")
    shm_size: Annotated[str, BeforeValidator(_number_as_text)] = Field(
        "16Gi", pattern=QUANTITY, description="Size of the in-memory /dev/shm of multi-accelerator pods (NCCL)."
    )


class TrainJobConfig(Section):
    runtime: str = Field(
        "torch-distributed", min_length=1, description="ClusterTrainingRuntime the multi-node TrainJob uses."
    )
    namespace: str | None = Field(None, description="Namespace of the TrainJob; unset: the pipeline pod's own.")
    timeout_s: int = Field(7 * 24 * 3600, ge=60, description="Seconds the TrainJob may take before it is deleted.")
    start_timeout_s: int = Field(3600, ge=10, description="Seconds node 0 may take to start running.")
    poll_s: float = Field(10.0, gt=0, le=600, description="Seconds between status checks of the TrainJob.")


# Each step's defaults. A partial `pipeline.<step>:` section in a config is laid over these, so setting a node
# selector keeps the GPU, CPU and memory requests.
STEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "prep": {"cpu_request": "1", "memory_request": "4Gi"},
    "train": {"accelerator_count": 1, "cpu_request": "8", "memory_request": "64Gi"},
    "eval": {"accelerator_count": 1, "cpu_request": "8", "memory_request": "64Gi"},
    "report": {"cpu_request": "1", "memory_request": "2Gi"},
}


def _resources(step: str) -> StepResources:
    return StepResources.model_validate(STEP_DEFAULTS[step])


class PipelineConfig(Section):
    parallelism: int = Field(4, ge=1, le=256, description="Evaluation pods running at once in the fan-out.")
    eval_steps: list[Annotated[int, Field(ge=0)]] | None = Field(
        None,
        min_length=1,
        description="Checkpoint steps to evaluate (0: the base model); unset: 0 and every saved step.",
    )
    eval_retries: int = Field(2, ge=0, le=10, description="Retries of a failed evaluation pod.")
    eval_retry_backoff_s: int = Field(60, ge=0, description="Seconds before the first retry; doubles each time.")
    train_image: str = Field(TRAIN_IMAGE, min_length=1, description="Image of the prep and train steps and TrainJobs.")
    eval_image: str = Field(EVAL_IMAGE, min_length=1, description="Image of the evaluation and report steps.")
    s3_secret: str | None = Field(
        "emtune-s3",
        description="Secret whose AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY reach store users; unset: none.",
    )
    wandb_secret: str | None = Field(
        "emtune-wandb", description="Secret whose WANDB_API_KEY reaches the train step; unset: none."
    )
    prep: StepResources = Field(default_factory=lambda: _resources("prep"))
    train: StepResources = Field(default_factory=lambda: _resources("train"))
    eval: StepResources = Field(default_factory=lambda: _resources("eval"))
    report: StepResources = Field(default_factory=lambda: _resources("report"))
    trainjob: TrainJobConfig = Field(default_factory=TrainJobConfig)

    @model_validator(mode="before")
    @classmethod
    def _partial_steps_keep_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        merged = dict(data)
        for step, defaults in STEP_DEFAULTS.items():
            given = merged.get(step)
            if isinstance(given, Mapping):
                merged[step] = {**defaults, **given}
        return merged
