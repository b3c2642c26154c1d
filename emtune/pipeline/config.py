"""Pipeline and cluster settings (`pipeline:` section): fixed when the pipeline is compiled.

Hyper-parameters of the steps are run-time pipeline parameters; these settings shape the compiled graph
itself (fan-out width, images, pod resources, secrets, retries, the multi-node TrainJob).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from emtune.cluster.images import EVAL_IMAGE, TRAIN_IMAGE
from emtune.config_base import Section

# A Kubernetes resource quantity such as 500m, 2, 16Gi or 1.5G.
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"


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
    cpu_request: str | None = Field(None, pattern=QUANTITY, description="CPU request, e.g. 2 or 500m.")
    cpu_limit: str | None = Field(None, pattern=QUANTITY, description="CPU limit.")
    memory_request: str | None = Field(None, pattern=QUANTITY, description="Memory request, e.g. 16Gi.")
    memory_limit: str | None = Field(None, pattern=QUANTITY, description="Memory limit.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pod must match.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pod tolerates.")
    shm_size: str = Field(
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
        "200Gi", pattern=QUANTITY, description="Size limit of the emptyDir, or size of the ephemeral PVC."
    )
    checkpoint_storage_class: str | None = Field(
        None, description="StorageClass of the ephemeral PVC; unset: the cluster's default."
    )


def _resources(**values: object) -> StepResources:
    return StepResources.model_validate(values)


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
    secret_keys: SecretKeys = Field(default_factory=SecretKeys)
    prep: StepResources = Field(default_factory=lambda: _resources(cpu_request="1", memory_request="4Gi"))
    train: StepResources = Field(
        default_factory=lambda: _resources(accelerator_count=1, cpu_request="8", memory_request="64Gi")
    )
    launcher: StepResources = Field(
        default_factory=lambda: _resources(cpu_request="500m", memory_request="1Gi"),
        description="The train step's pod when train.nodes > 1: it only launches and watches the TrainJob, "
        "whose nodes get the train resources.",
    )
    eval: StepResources = Field(
        default_factory=lambda: _resources(accelerator_count=1, cpu_request="8", memory_request="64Gi")
    )
    report: StepResources = Field(default_factory=lambda: _resources(cpu_request="1", memory_request="2Gi"))
    trainjob: TrainJobConfig = Field(default_factory=TrainJobConfig)

    def secret_env(self, *, wandb: bool) -> list[tuple[str, str, str]]:
        """(secret, key in it, environment variable) of the credentials a pod gets; W&B only where it logs."""
        refs = []
        if self.s3_secret:
            refs += [
                (self.s3_secret, self.secret_keys.aws_access_key_id, "AWS_ACCESS_KEY_ID"),
                (self.s3_secret, self.secret_keys.aws_secret_access_key, "AWS_SECRET_ACCESS_KEY"),
            ]
        if wandb and self.wandb_secret:
            refs.append((self.wandb_secret, self.secret_keys.wandb_api_key, "WANDB_API_KEY"))
        return refs
