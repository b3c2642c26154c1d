"""`emtune-pipeline`: prep → train → fan-out evaluation over (checkpoint step × benchmark) → report.

The graph's shape (fan-out width, images, pod resources, secrets, retries) comes from the run config's
`pipeline` section when it is compiled; every other config key is a run-time pipeline parameter.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes
from kfp.dsl.graph_component import GraphComponent

from emtune.cluster.scratch import SCRATCH_DIR, SCRATCH_ENV, cache_env
from emtune.cluster.trainjob import POD_NAME_ENV, POD_UID_ENV
from emtune.components import eval_pairs, evaluate, prep, promote, report, train
from emtune.config import RunConfig
from emtune.config.pipeline import PipelineConfig, StepResources
from emtune.fsutil import atomic_write_text
from emtune.pipeline.checks import check_pipeline_config
from emtune.pipeline.ir_check import check_compiled_yaml
from emtune.pipeline.params import PROVENANCE_PARAMS, compile_time_yaml, params_docstring, pipeline_signature

PIPELINE_NAME = "emtune-pipeline"
COMPILED_YAML = Path(__file__).with_name("emtune_pipeline.yaml")


def _place(task: dsl.PipelineTask, res: StepResources, p: PipelineConfig) -> None:
    """Pod resources, accelerators, scheduling, image pull secrets, and a RAM-backed /dev/shm for
    multi-accelerator pods."""
    if p.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(p.image_pull_secrets))
    if res.accelerator_count:
        task.set_accelerator_type(res.accelerator_type).set_accelerator_limit(res.accelerator_count)
    if res.cpu_request:
        task.set_cpu_request(res.cpu_request)
    if res.cpu_limit:
        task.set_cpu_limit(res.cpu_limit)
    if res.memory_request:
        task.set_memory_request(res.memory_request)
    if res.memory_limit:
        task.set_memory_limit(res.memory_limit)
    for label, value in res.node_selector.items():
        kubernetes.add_node_selector(task, label, value)
    for toleration in res.tolerations:
        kubernetes.add_toleration(
            task, key=toleration.key, operator=toleration.operator, value=toleration.value, effect=toleration.effect
        )
    if res.accelerator_count > 1:
        kubernetes.empty_dir_mount(task, "dshm", "/dev/shm", medium="Memory", size_limit=res.shm_size)


def _scratch(task: dsl.PipelineTask, size: str, p: PipelineConfig) -> None:
    """A scratch volume of `size` for step folders, pulled checkpoints and caches (emtune.cluster.scratch)."""
    if p.scratch.volume == "ephemeral":
        kubernetes.add_ephemeral_volume(
            task, "scratch", SCRATCH_DIR, access_modes=["ReadWriteOnce"], size=size,
            storage_class_name=p.scratch.storage_class,
        )  # fmt: skip
    else:
        kubernetes.empty_dir_mount(task, "scratch", SCRATCH_DIR, size_limit=size)
    for name, value in {SCRATCH_ENV: SCRATCH_DIR, **cache_env(SCRATCH_DIR)}.items():
        task.set_env_variable(name, value)


def _secrets(task: dsl.PipelineTask, cfg: RunConfig, *, wandb: bool = False, registry: bool = False) -> None:
    """Credentials as env vars from Kubernetes secrets; optional, so a store that needs none still works."""
    by_secret: dict[str, dict[str, str]] = {}
    for secret, key, env in cfg.pipeline.secret_env(wandb=wandb, registry=registry):
        by_secret.setdefault(secret, {})[key] = env
    for secret, keys in by_secret.items():
        kubernetes.use_secret_as_env(task, secret, keys, optional=True)


def build_pipeline(cfg: RunConfig, *, local: bool = False) -> GraphComponent:
    """The pipeline for `cfg`: its parameters default to `cfg`'s values; its shape follows `cfg.pipeline`.

    `local` (kfp.local runs) trains in one task: kfp.local ignores pod resources anyway, and (kfp 2.17) cannot
    resolve an artifact chosen by `dsl.OneOf`, which the cluster graph's per-run train branches need.
    """
    check_pipeline_config(cfg)
    p = cfg.pipeline
    prep_op, train_op = (m.component(p.train_image) for m in (prep, train))
    eval_op, report_op, pairs_op, promote_op = (
        m.component(p.eval_image) for m in (evaluate, report, eval_pairs, promote)
    )
    baked = compile_time_yaml(cfg)

    # The pipeline's one output is the report folder (kfp.local hands it back to `emtune pipeline run`).
    signature = pipeline_signature(cfg).replace(return_annotation=dsl.Artifact)

    def emtune_pipeline(*args: Any) -> Any:  # KFP passes one channel per parameter, in signature order
        # Every step resolves the run's config from the same values (see emtune.pipeline.steps.run_config): the
        # compiled-in sections and every run parameter, each passed on as an input of its own.
        values = dict(zip(signature.parameters, args, strict=True))
        # Provenance parameters only record who started the run and why (KFP shows them); no step reads them.
        config = {"compile_time_config": baked, **{k: v for k, v in values.items() if k not in PROVENANCE_PARAMS}}

        prompts = prep_op(**config).set_caching_options(True)
        _place(prompts, p.prep, p)
        _secrets(prompts, cfg)

        def train_task(resources: StepResources, *, scratch: bool) -> dsl.PipelineTask:
            # A cached train step would skip training and hand on another run's checkpoints.
            task = train_op(
                **config, prompts=prompts.outputs["prompts"], run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER
            ).set_caching_options(False)
            _place(task, resources, p)
            if scratch:  # the launcher pod only watches; the TrainJob's nodes have volumes of their own
                _scratch(task, p.scratch.train_size, p)
            _secrets(task, cfg, wandb=True)
            # Who launched a TrainJob: it becomes the job's owner (emtune.cluster.trainjob.launcher_owner).
            kubernetes.use_field_path_as_env(task, POD_NAME_ENV, "metadata.name")
            kubernetes.use_field_path_as_env(task, POD_UID_ENV, "metadata.uid")
            return task

        if local:
            trained = train_task(p.train, scratch=False)  # kfp.local: this machine's disk
            pairs, train_metrics = trained.outputs["Output"], trained.outputs["metrics"]
        else:
            # train.nodes is a run-time parameter, so the branch is taken per run: with several nodes this pod
            # only launches and watches the TrainJob (whose nodes get the train resources) and holds no GPUs.
            with dsl.If(values["train_nodes"] > 1, name="multi-node"):
                launched = train_task(p.launcher, scratch=False)
            with dsl.Else(name="single-node"):
                in_pod = train_task(p.train, scratch=True)
            # The loop reads its items from a task's declared output (see emtune.components.eval_pairs).
            planned = pairs_op(pairs=dsl.OneOf(launched.outputs["Output"], in_pod.outputs["Output"]))
            planned.set_caching_options(True)
            _place(planned, p.report, p)  # a small CPU pod, like the report's
            pairs = planned.output
            train_metrics = dsl.OneOf(launched.outputs["metrics"], in_pod.outputs["metrics"])

        with dsl.ParallelFor(pairs, parallelism=p.parallelism) as pair:
            evaluated = eval_op(**config, model=pair.model, step=pair.step, benchmark=pair.benchmark)
            evaluated.set_caching_options(True)
            evaluated.set_retry(p.eval_retries, backoff_duration=f"{p.eval_retry_backoff_s}s", backoff_factor=2.0)
            _place(evaluated, p.eval, p)
            if not local:
                _scratch(evaluated, p.scratch.eval_size, p)
            _secrets(evaluated, cfg)

        reported = report_op(
            **config, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            eval_results=dsl.Collected(evaluated.outputs["results"]), train_metrics=train_metrics,
        )  # fmt: skip
        _place(reported, p.report, p)
        _secrets(reported, cfg)  # it writes the report into the store

        with dsl.If(values["promote_enabled"] == True, name="promote"):  # noqa: E712  a KFP condition, not Python's
            promoted = promote_op(**config, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, report=reported.outputs["report"])
            promoted.set_caching_options(False)  # a registry's state is not a function of the inputs
            _place(promoted, p.report, p)
            _secrets(promoted, cfg, registry=True)  # the store's and the registry's credentials
        return reported.outputs["report"]

    emtune_pipeline.__signature__ = signature  # type: ignore[attr-defined]
    emtune_pipeline.__doc__ = params_docstring(
        "Entropy-minimisation fine-tuning: prep, train, evaluate every (checkpoint, benchmark) pair, report, "
        "promote (when promote.enabled)."
    )
    return dsl.pipeline(name=PIPELINE_NAME)(emtune_pipeline)


def compile_pipeline(cfg: RunConfig, path: Path) -> Path:
    """Compile `cfg`'s pipeline to `path`, only once KFP's backend could resolve every input of it."""
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / path.name
        compiler.Compiler().compile(build_pipeline(cfg), str(draft))
        text = draft.read_text(encoding="utf-8")
    problems = check_compiled_yaml(text)
    # A graph the SDK compiles but the backend cannot run is a bug here (or in kfp), not the user's config.
    if problems:
        raise RuntimeError("the compiled pipeline would not resolve on KFP 2.17:\n" + "\n".join(problems))
    atomic_write_text(path, text)
    return path
