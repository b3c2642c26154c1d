"""The multi-node TrainJob (Kubeflow Trainer v2, `trainer.kubeflow.org/v1alpha1`), built from the run config.

Every node runs `torchrun -m emtune train --resume` on the run config; the torch runtime injects the rendezvous
(PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, ...) that torchrun reads. `--resume` makes a restarted pod continue
from the newest complete step in the store (a fresh job finds none and starts at step 0). The run config and the
prompt set reach the pods in a ConfigMap owned by the TrainJob, so they are deleted together. The TrainJob is
owned by the pipeline pod that launched it (when known) and bounded by `activeDeadlineSeconds`, so a launcher
that dies hard cannot leave it holding GPUs.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from pathlib import Path

from kubeflow_trainer_api import models as m

from emtune.cluster.scratch import cache_env
from emtune.config import RunConfig, dump_config
from emtune.config.pipeline import StepResources, TrainJobConfig
from emtune.errors import ConfigError

API_VERSION = "trainer.kubeflow.org/v1alpha1"
KIND = "TrainJob"
# Names the torch runtimes give their trainer replicated job and container.
TRAINER_JOB = "node"
TRAINER_CONTAINER = "node"
PATCH_MANAGER = "emtune.dev/launcher"
INPUTS_DIR = "/etc/emtune"
RUN_CONFIG_FILE = "run.yaml"
PROMPTS_FILE = "prompts.parquet"
# Where each node keeps its local step folders before rank 0 pushes them to the store: a volume of its own
# (pipeline.trainjob.checkpoint_volume), not the container's writable layer.
# The same volume holds the node's caches (HF, Triton, torch extensions), beside the run folder.
NODE_VOLUME_DIR = "/var/lib/emtune"
NODE_RUN_DIR = f"{NODE_VOLUME_DIR}/run"
NODE_CACHE_DIR = f"{NODE_VOLUME_DIR}/cache"
RUN_VOLUME = "emtune-run"
# Kubeflow profile namespaces inject an Istio sidecar that breaks torchrun's rendezvous (kubeflow/trainer#2794);
# the label is Istio's current switch, the annotation the one older releases read.
NO_ISTIO = {"sidecar.istio.io/inject": "false"}
# A ConfigMap holds at most 1 MiB; leave room for the config and the object's metadata.
MAX_INPUT_BYTES = 900 * 1024
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
    return [
        m.IoK8sApiCoreV1EnvVar(
            name=env,
            value_from=m.IoK8sApiCoreV1EnvVarSource(
                secret_key_ref=m.IoK8sApiCoreV1SecretKeySelector(name=secret, key=key, optional=True)
            ),
        )
        for secret, key, env in cfg.pipeline.secret_env(wandb=True)
    ]


def _quantities(values: dict[str, str | None]) -> dict[str, m.IoK8sApimachineryPkgApiResourceQuantity] | None:
    given = {name: m.IoK8sApimachineryPkgApiResourceQuantity(value) for name, value in values.items() if value}
    return given or None


def node_resources(res: StepResources, settings: TrainJobConfig) -> m.IoK8sApiCoreV1ResourceRequirements:
    """Each node's requests and limits; an emptyDir run volume is the node's own disk, so it is requested too."""
    limits: dict[str, str | None] = {"cpu": res.cpu_limit, "memory": res.memory_limit}
    if res.accelerator_count:
        limits[res.accelerator_type] = str(res.accelerator_count)
    requests = {"cpu": res.cpu_request, "memory": res.memory_request}
    if settings.checkpoint_volume == "emptyDir":
        requests["ephemeral-storage"] = settings.checkpoint_size
    return m.IoK8sApiCoreV1ResourceRequirements(requests=_quantities(requests), limits=_quantities(limits))


def run_volume(settings: TrainJobConfig) -> m.IoK8sApiCoreV1Volume:
    """The node's step-folder volume: an emptyDir with a size limit, or an ephemeral PVC of that size."""
    size = m.IoK8sApimachineryPkgApiResourceQuantity(settings.checkpoint_size)
    if settings.checkpoint_volume == "emptyDir":
        return m.IoK8sApiCoreV1Volume(name=RUN_VOLUME, empty_dir=m.IoK8sApiCoreV1EmptyDirVolumeSource(size_limit=size))
    claim = m.IoK8sApiCoreV1PersistentVolumeClaimSpec(
        access_modes=["ReadWriteOnce"],
        storage_class_name=settings.checkpoint_storage_class,
        resources=m.IoK8sApiCoreV1VolumeResourceRequirements(requests={"storage": size}),
    )
    return m.IoK8sApiCoreV1Volume(
        name=RUN_VOLUME,
        ephemeral=m.IoK8sApiCoreV1EphemeralVolumeSource(
            volume_claim_template=m.IoK8sApiCoreV1PersistentVolumeClaimTemplate(spec=claim)
        ),
    )


def _pod_patch(cfg: RunConfig, config_map: str) -> m.TrainerV1alpha1PodSpecPatch:
    res, settings = cfg.pipeline.train, cfg.pipeline.trainjob
    volumes = [
        m.IoK8sApiCoreV1Volume(name="emtune-inputs", config_map=m.IoK8sApiCoreV1ConfigMapVolumeSource(name=config_map)),
        run_volume(settings),
    ]
    mounts = [
        m.IoK8sApiCoreV1VolumeMount(name="emtune-inputs", mount_path=INPUTS_DIR, read_only=True),
        m.IoK8sApiCoreV1VolumeMount(name=RUN_VOLUME, mount_path=NODE_VOLUME_DIR),
    ]
    # NCCL and dataloader workers need more shared memory than the container default of 64 MiB. The runtime
    # declares it (the chart's trainingRuntime.shmSize); a patch naming the volume would replace its size.
    if settings.shm_size is not None:
        quantity = m.IoK8sApimachineryPkgApiResourceQuantity(settings.shm_size)
        empty_dir = m.IoK8sApiCoreV1EmptyDirVolumeSource(medium="Memory", size_limit=quantity)
        volumes.append(m.IoK8sApiCoreV1Volume(name="dshm", empty_dir=empty_dir))
        mounts.append(m.IoK8sApiCoreV1VolumeMount(name="dshm", mount_path="/dev/shm"))
    tolerations = [
        m.IoK8sApiCoreV1Toleration(key=t.key, operator=t.operator, value=t.value, effect=t.effect)
        for t in res.tolerations
    ]
    pull_secrets = [m.IoK8sApiCoreV1LocalObjectReference(name=name) for name in cfg.pipeline.image_pull_secrets]
    return m.TrainerV1alpha1PodSpecPatch(
        # SIGTERM to SIGKILL: the trainer's own grace (train.stop_grace_s) plus a margin for torchrun's shutdown.
        termination_grace_period_seconds=math.ceil(cfg.train.stop_grace_s) + 10,
        containers=[m.TrainerV1alpha1ContainerPatch(name=TRAINER_CONTAINER, volume_mounts=mounts)],
        volumes=volumes,
        node_selector=res.node_selector or None,
        tolerations=tolerations or None,
        image_pull_secrets=pull_secrets or None,
    )


# The launching pod's identity, given to it through the downward API (see workflows/emtune_pipeline.py).
POD_NAME_ENV, POD_UID_ENV = "EMTUNE_POD_NAME", "EMTUNE_POD_UID"


def launcher_owner(env: Mapping[str, str]) -> m.IoK8sApimachineryPkgApisMetaV1OwnerReference | None:
    """The owner reference to the pod we run in, when the downward API told us who that is."""
    name, uid = env.get(POD_NAME_ENV), env.get(POD_UID_ENV)
    return owner_pod(name, uid) if name and uid else None


def owner_pod(name: str, uid: str) -> m.IoK8sApimachineryPkgApisMetaV1OwnerReference:
    """A reference to the launching pod: deleting that pod garbage-collects the TrainJob (no finaliser needed)."""
    return m.IoK8sApimachineryPkgApisMetaV1OwnerReference(api_version="v1", kind="Pod", name=name, uid=uid)


def build_trainjob(
    cfg: RunConfig,
    *,
    name: str,
    namespace: str,
    config_map: str,
    owner: m.IoK8sApimachineryPkgApisMetaV1OwnerReference | None = None,
) -> m.TrainerV1alpha1TrainJob:
    """The TrainJob for `cfg.train.nodes` nodes with `cfg.pipeline.train` resources on each."""
    nodes, res, settings = cfg.train.nodes, cfg.pipeline.train, cfg.pipeline.trainjob
    if nodes < 1:
        raise ConfigError(f"train.nodes = {nodes}: a TrainJob needs at least 1 node")
    pod_patch = _pod_patch(cfg, config_map)
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
                                    template=m.TrainerV1alpha1PodTemplatePatch(
                                        metadata=m.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
                                            labels=NO_ISTIO, annotations=NO_ISTIO
                                        ),
                                        spec=pod_patch,
                                    )
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
        command=["torchrun", "-m", "emtune", "train", "--config", f"{INPUTS_DIR}/{RUN_CONFIG_FILE}", "--resume"],
        num_nodes=nodes,
        num_proc_per_node=max(res.accelerator_count, 1),
        resources_per_node=node_resources(res, settings),
        env=[
            m.IoK8sApiCoreV1EnvVar(name="PYTHONUNBUFFERED", value="1"),
            *(m.IoK8sApiCoreV1EnvVar(name=k, value=v) for k, v in cache_env(NODE_CACHE_DIR).items()),
            *secret_env(cfg),
        ],
    )
    return m.TrainerV1alpha1TrainJob(
        api_version=API_VERSION,
        kind=KIND,
        metadata=m.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={"app.kubernetes.io/part-of": "emtune"},
            owner_references=[owner] if owner is not None else None,
        ),
        spec=m.TrainerV1alpha1TrainJobSpec(
            active_deadline_seconds=settings.timeout_s,
            runtime_ref=m.TrainerV1alpha1RuntimeRef(
                api_group="trainer.kubeflow.org", kind=settings.runtime_kind, name=settings.runtime
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
