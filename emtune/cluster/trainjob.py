"""The multi-node TrainJob (Kubeflow Trainer v2, `trainer.kubeflow.org/v1alpha1`), built from the run config.

Every node runs `torchrun -m emtune train` on the run config; the torch runtime injects the rendezvous
(PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, ...) that torchrun reads. The run config and the prompt set
reach the pods in a ConfigMap owned by the TrainJob, so they are deleted together.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from kubeflow_trainer_api import models as m

from emtune.config import RunConfig, dump_config
from emtune.errors import ConfigError
from emtune.pipeline.config import StepResources

API_VERSION = "trainer.kubeflow.org/v1alpha1"
KIND = "TrainJob"
# Names the torch runtimes give their trainer replicated job and container.
TRAINER_JOB = "node"
TRAINER_CONTAINER = "node"
PATCH_MANAGER = "emtune.dev/launcher"
INPUTS_DIR = "/etc/emtune"
RUN_CONFIG_FILE = "run.yaml"
PROMPTS_FILE = "prompts.parquet"
# Where each node keeps its local step folders before rank 0 pushes them to the store.
NODE_RUN_DIR = "/tmp/emtune/run"
# A ConfigMap holds at most 1 MiB; leave room for the config and the object's metadata.
MAX_INPUT_BYTES = 900 * 1024
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
WANDB_SECRET_KEYS = ("WANDB_API_KEY",)
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


def trainjob_name(run_id: str) -> str:
    """A DNS-1035 label: lowercase, starts with a letter, at most 40 characters (JobSet appends to it)."""
    cleaned = _DNS_LABEL.sub("-", f"emtune-{run_id}".lower()).strip("-")
    return cleaned[:40].rstrip("-")


def node_run_config(cfg: RunConfig) -> RunConfig:
    """The config every node trains with: prompts from the mounted ConfigMap, steps in pod-local scratch."""
    if not cfg.store.uri or not cfg.store.uri.startswith("s3://"):
        raise ConfigError(
            f"store.uri {cfg.store.uri!r} cannot be reached from TrainJob pods; multi-node training needs s3://bucket/prefix"
        )
    node_cfg = cfg.model_copy(deep=True)
    node_cfg.train.prompts = f"{INPUTS_DIR}/{PROMPTS_FILE}"
    node_cfg.run.out_dir = Path(NODE_RUN_DIR)
    return node_cfg


def secret_env(cfg: RunConfig) -> list[m.IoK8sApiCoreV1EnvVar]:
    """Credentials as references to Kubernetes secrets: their values never enter the manifest."""
    pairs = []
    if cfg.pipeline.s3_secret:
        pairs += [(cfg.pipeline.s3_secret, key) for key in S3_SECRET_KEYS]
    if cfg.pipeline.wandb_secret:
        pairs += [(cfg.pipeline.wandb_secret, key) for key in WANDB_SECRET_KEYS]
    return [
        m.IoK8sApiCoreV1EnvVar(
            name=key,
            value_from=m.IoK8sApiCoreV1EnvVarSource(
                secret_key_ref=m.IoK8sApiCoreV1SecretKeySelector(name=secret, key=key, optional=True)
            ),
        )
        for secret, key in pairs
    ]


def _quantities(values: dict[str, str | None]) -> dict[str, m.IoK8sApimachineryPkgApiResourceQuantity] | None:
    given = {name: m.IoK8sApimachineryPkgApiResourceQuantity(value) for name, value in values.items() if value}
    return given or None


def node_resources(res: StepResources) -> m.IoK8sApiCoreV1ResourceRequirements:
    limits: dict[str, str | None] = {"cpu": res.cpu_limit, "memory": res.memory_limit}
    if res.accelerator_count:
        limits[res.accelerator_type] = str(res.accelerator_count)
    return m.IoK8sApiCoreV1ResourceRequirements(
        requests=_quantities({"cpu": res.cpu_request, "memory": res.memory_request}), limits=_quantities(limits)
    )


def _pod_patch(res: StepResources, config_map: str) -> m.TrainerV1alpha1PodSpecPatch:
    volumes = [
        m.IoK8sApiCoreV1Volume(name="emtune-inputs", config_map=m.IoK8sApiCoreV1ConfigMapVolumeSource(name=config_map)),
        # NCCL and dataloader workers need more shared memory than the container default of 64 MiB.
        m.IoK8sApiCoreV1Volume(
            name="dshm",
            empty_dir=m.IoK8sApiCoreV1EmptyDirVolumeSource(
                medium="Memory", size_limit=m.IoK8sApimachineryPkgApiResourceQuantity(res.shm_size)
            ),
        ),
    ]
    mounts = [
        m.IoK8sApiCoreV1VolumeMount(name="emtune-inputs", mount_path=INPUTS_DIR, read_only=True),
        m.IoK8sApiCoreV1VolumeMount(name="dshm", mount_path="/dev/shm"),
    ]
    tolerations = [
        m.IoK8sApiCoreV1Toleration(key=t.key, operator=t.operator, value=t.value, effect=t.effect)
        for t in res.tolerations
    ]
    return m.TrainerV1alpha1PodSpecPatch(
        containers=[m.TrainerV1alpha1ContainerPatch(name=TRAINER_CONTAINER, volume_mounts=mounts)],
        volumes=volumes,
        node_selector=res.node_selector or None,
        tolerations=tolerations or None,
    )


def build_trainjob(cfg: RunConfig, *, name: str, namespace: str, config_map: str) -> m.TrainerV1alpha1TrainJob:
    """The TrainJob for `cfg.train.nodes` nodes with `cfg.pipeline.train` resources on each."""
    nodes, res = cfg.train.nodes, cfg.pipeline.train
    if nodes < 1:
        raise ConfigError(f"train.nodes = {nodes}: a TrainJob needs at least 1 node")
    pod_patch = _pod_patch(res, config_map)
    patch = m.TrainerV1alpha1RuntimePatch(
        manager=PATCH_MANAGER,
        training_runtime_spec=m.TrainerV1alpha1TrainingRuntimeSpecPatch(
            template=m.TrainerV1alpha1JobSetTemplatePatch(
                spec=m.TrainerV1alpha1JobSetSpecPatch(
                    replicated_jobs=[
                        m.TrainerV1alpha1ReplicatedJobPatch(
                            name=TRAINER_JOB,
                            template=m.TrainerV1alpha1JobTemplatePatch(
                                spec=m.TrainerV1alpha1JobSpecPatch(
                                    template=m.TrainerV1alpha1PodTemplatePatch(spec=pod_patch)
                                )
                            ),
                        )
                    ]
                )
            )
        ),
    )
    trainer = m.TrainerV1alpha1Trainer(
        image=cfg.pipeline.train_image,
        command=["torchrun", "-m", "emtune", "train", "--config", f"{INPUTS_DIR}/{RUN_CONFIG_FILE}"],
        num_nodes=nodes,
        num_proc_per_node=max(res.accelerator_count, 1),
        resources_per_node=node_resources(res),
        env=[m.IoK8sApiCoreV1EnvVar(name="PYTHONUNBUFFERED", value="1"), *secret_env(cfg)],
    )
    return m.TrainerV1alpha1TrainJob(
        api_version=API_VERSION,
        kind=KIND,
        metadata=m.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=name, namespace=namespace, labels={"app.kubernetes.io/part-of": "emtune"}
        ),
        spec=m.TrainerV1alpha1TrainJobSpec(
            runtime_ref=m.TrainerV1alpha1RuntimeRef(
                api_group="trainer.kubeflow.org", kind="ClusterTrainingRuntime", name=cfg.pipeline.trainjob.runtime
            ),
            trainer=trainer,
            runtime_patches=[patch],
        ),
    )


def build_inputs_config_map(
    cfg: RunConfig, prompts: bytes, *, name: str, namespace: str, owner: m.TrainerV1alpha1TrainJob, owner_uid: str
) -> m.IoK8sApiCoreV1ConfigMap:
    """The run config and prompt set every node mounts; garbage-collected with its TrainJob."""
    config_text = dump_config(node_run_config(cfg))
    size = len(prompts) + len(config_text.encode())
    if size > MAX_INPUT_BYTES:
        raise ConfigError(
            f"prompt set of {len(prompts)} bytes is too large for a multi-node TrainJob (at most {MAX_INPUT_BYTES} "
            "bytes with the config); select fewer problems in prep"
        )
    assert owner.metadata is not None and owner.metadata.name is not None
    return m.IoK8sApiCoreV1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=m.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=name,
            namespace=namespace,
            owner_references=[
                m.IoK8sApimachineryPkgApisMetaV1OwnerReference(
                    api_version=API_VERSION, kind=KIND, name=owner.metadata.name, uid=owner_uid, controller=True
                )
            ],
        ),
        data={RUN_CONFIG_FILE: config_text},
        binary_data={PROMPTS_FILE: base64.b64encode(prompts).decode()},
    )
