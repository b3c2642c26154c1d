"""Pipeline and cluster settings (`pipeline:` section): fixed when the pipeline is compiled.

Hyper-parameters of the steps are run-time pipeline parameters; these settings shape the compiled graph
itself (fan-out width, images, pod resources, secrets, retries, the multi-node TrainJob).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from emtune.config.base import Section
from emtune.config.images import EVAL_IMAGE, TRAIN_IMAGE

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


class SecretKeys(Section):
    aws_access_key_id: str = Field(
        "AWS_ACCESS_KEY_ID", min_length=1, description="Key of the access key id in s3_secret."
    )
    aws_secret_access_key: str = Field(
        "AWS_SECRET_ACCESS_KEY", min_length=1, description="Key of the secret access key in s3_secret."
    )
    wandb_api_key: str = Field("WANDB_API_KEY", min_length=1, description="Key of the API key in wandb_secret.")


# The registry clients' own credential variables (mlflow reads these; emtune hands the token to model-registry's
# client); the registry secret holds them under the same names.
REGISTRY_ENV = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "EMTUNE_REGISTRY_TOKEN",
)


class TrainJobConfig(Section):
    runtime: str = Field(
        "torch-distributed", min_length=1, description="Training runtime the multi-node TrainJob uses."
    )
    runtime_kind: Literal["ClusterTrainingRuntime", "TrainingRuntime"] = Field(
        "ClusterTrainingRuntime",
        description="Kind of that runtime: cluster-wide, or namespaced in the TrainJob's namespace (the Helm chart's).",
    )
    namespace: str | None = Field(None, description="Namespace of the TrainJob; unset: the pipeline pod's own.")
    timeout_s: int = Field(
        7 * 24 * 3600,
        ge=60,
        description="Seconds the TrainJob may take before it is deleted; also its activeDeadlineSeconds, so "
        "the cluster ends it even when the launching pod is gone.",
    )
    start_timeout_s: int = Field(3600, ge=10, description="Seconds node 0 may take to start running.")
    poll_s: float = Field(10.0, gt=0, le=600, description="Seconds between status checks of the TrainJob.")
    checkpoint_volume: Literal["emptyDir", "ephemeral"] = Field(
        "emptyDir",
        description="Volume each node keeps its step folders on: an emptyDir, or an ephemeral PVC (a fresh "
        "volume per pod from checkpoint_storage_class).",
    )
    checkpoint_size: str = Field(
        "500Gi",
        pattern=QUANTITY,
        description="Size limit of the emptyDir (also each node's ephemeral-storage request), or size of the "
        "ephemeral PVC; it holds step folders, resume state and the HF/Triton caches.",
    )
    checkpoint_storage_class: str | None = Field(
        None, description="StorageClass of the ephemeral PVC; unset: the cluster's default."
    )
    shm_size: Annotated[str | None, BeforeValidator(_number_as_text)] = Field(
        None,
        pattern=QUANTITY,
        description="Size of the nodes' in-memory /dev/shm; unset: the training runtime's own (the Helm chart's "
        "trainingRuntime.shmSize). Set it for a runtime that declares none.",
    )


class ScratchConfig(Section):
    """Disk of the train and eval pods: step folders, pulled checkpoints and the HF/vLLM/Triton caches.

    The defaults fit the 7B recipe (configs/paper.yaml): see docs/deploy.md for the arithmetic."""

    volume: Literal["emptyDir", "ephemeral"] = Field(
        "emptyDir",
        description="An emptyDir with a size limit on the node's disk, or a generic ephemeral volume (a fresh PVC "
        "per pod, provisioned like one). KFP 2.17 sets neither an ephemeral-storage request nor an fsGroup on "
        "pipeline pods: the emptyDir is always writable but not reserved; choose ephemeral where the storage "
        "class gives the image's user (uid 1000, gid 0) a writable volume.",
    )
    storage_class: str | None = Field(None, description="StorageClass of the ephemeral volume; unset: the default.")
    train_size: str = Field("500Gi", pattern=QUANTITY, description="Scratch of the single-node train pod.")
    eval_size: str = Field("100Gi", pattern=QUANTITY, description="Scratch of each evaluation pod.")


# Each step's defaults. A partial `pipeline.<step>:` section in a config is laid over these, so setting a node
# selector keeps the GPU, CPU and memory requests.
STEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "prep": {"cpu_request": "1", "memory_request": "4Gi"},
    "train": {"accelerator_count": 1, "cpu_request": "8", "memory_request": "64Gi"},
    "eval": {"accelerator_count": 1, "cpu_request": "8", "memory_request": "64Gi"},
    "report": {"cpu_request": "1", "memory_request": "2Gi"},
    "launcher": {"cpu_request": "500m", "memory_request": "1Gi"},
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
        description="Secret whose S3 credentials (keys: secret_keys) reach store users; unset: none.",
    )
    wandb_secret: str | None = Field(
        "emtune-wandb", description="Secret whose W&B API key (key: secret_keys) reaches the train step; unset: none."
    )
    registry_secret: str | None = Field(
        "emtune-registry",
        description="Secret with the model registry's credentials (keys: " + ", ".join(REGISTRY_ENV) + ", each "
        "optional) for the promote step; unset: none.",
    )
    secret_keys: SecretKeys = Field(default_factory=SecretKeys)
    image_pull_secrets: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list, description="Secrets every pipeline pod and TrainJob node pulls its image with."
    )
    scratch: ScratchConfig = Field(default_factory=ScratchConfig)
    prep: StepResources = Field(default_factory=lambda: _resources("prep"))
    train: StepResources = Field(default_factory=lambda: _resources("train"))
    launcher: StepResources = Field(
        default_factory=lambda: _resources("launcher"),
        description="The train step's pod when train.nodes > 1: it only launches and watches the TrainJob, "
        "whose nodes get the train resources.",
    )
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

    def secret_env(self, *, wandb: bool, registry: bool = False) -> list[tuple[str, str, str]]:
        """(secret, key in it, environment variable) of the credentials a pod gets; W&B only where it logs, the
        registry's only where it registers."""
        refs = []
        if self.s3_secret:
            refs += [
                (self.s3_secret, self.secret_keys.aws_access_key_id, "AWS_ACCESS_KEY_ID"),
                (self.s3_secret, self.secret_keys.aws_secret_access_key, "AWS_SECRET_ACCESS_KEY"),
            ]
        if wandb and self.wandb_secret:
            refs.append((self.wandb_secret, self.secret_keys.wandb_api_key, "WANDB_API_KEY"))
        if registry and self.registry_secret:
            refs += [(self.registry_secret, env, env) for env in REGISTRY_ENV]
        return refs
