"""What each pipeline component calls: KFP inputs and outputs (config text, artifact paths) in, the step's
library function called, its results shaped for the next task out. Components hold no logic beyond one call.

Checkpoints move between tasks by store URI; prompts, metrics and reports are artifacts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from emtune.cluster.scratch import SCRATCH_ENV
from emtune.config import RunConfig, dump_config
from emtune.errors import ConfigError, TrainingError
from emtune.fsutil import atomic_dir, atomic_write_json, atomic_write_text
from emtune.interrupts import Stopped, forwarding, handle_stop_signals
from emtune.pipeline.params import resolve_config
from emtune.store.layout import step_name

log = logging.getLogger(__name__)

PROMPTS_FILE = "prompts.parquet"
TRAIN_METRICS_FILE = "metrics.jsonl"


Step = TypeVar("Step", bound=Callable[..., Any])


def stoppable(step: Step) -> Step:
    """KFP runs a step's function in its own process, not through the CLI: SIGTERM (pre-emption) must reach it as
    it reaches a CLI command, so the trainer stops at a safe point and finishes or abandons its push in time."""

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> Any:
        with handle_stop_signals():
            return step(*args, **kwargs)

    return run  # type: ignore[return-value]


def run_config(compile_time_config: str, run_parameters: dict[str, Any]) -> RunConfig:
    """The run's validated config from the compiled-in settings and the run's parameter values (by name).

    Every step resolves it itself from these pipeline-level values rather than receiving it from an
    upstream task: the inputs stay identical across runs with the same parameters (so caching hits), and
    kfp.local replaces task outputs passed into a ParallelFor body with the loop item (kfp 2.17).
    """
    cfg = resolve_config(compile_time_config, run_parameters)
    if not cfg.store.uri:
        raise ConfigError("store.uri is unset; the pipeline moves checkpoints through a store (s3:// or file://)")
    return cfg


@stoppable
def prep_step(compile_time_config: str, run_parameters: dict[str, Any], prompts_dir: str) -> None:
    """prep's output folder; without data.source, the prompt set train.prompts names (e.g. builtin:demo)."""
    cfg = run_config(compile_time_config, run_parameters)
    if cfg.data.source is None:
        _write_prompt_set(cfg, Path(prompts_dir))
        return
    from emtune.data import prep

    prep.run(cfg, out=Path(prompts_dir))


def _write_prompt_set(cfg: RunConfig, out: Path) -> None:
    from emtune.data.prep import write_prompts
    from emtune.data.problems import Problem
    from emtune.train.trainer import load_prompts

    prompt_set = load_prompts(cfg)
    problems = [Problem(id=str(i), problem=text, answer=None, row=i) for i, text in enumerate(prompt_set.problems)]
    manifest = {
        "source": cfg.train.prompts,
        "rows_unique": len(problems),
        "prompt_format": prompt_set.prompt_format or cfg.data.prompt_format,
    }
    with atomic_dir(out, "prep") as tmp:
        write_prompts(problems, tmp / PROMPTS_FILE)
        atomic_write_json(tmp / "manifest.json", manifest)


def run_store_uri(cfg: RunConfig, run_id: str) -> str:
    """Each pipeline run pushes to its own prefix under store.uri, so runs never mix their steps."""
    assert cfg.store.uri
    return f"{cfg.store.uri.rstrip('/')}/{run_id}"


def eval_pairs(cfg: RunConfig, saved: dict[int, str]) -> list[dict[str, Any]]:
    """(checkpoint, benchmark) pairs: pipeline.eval_steps, else step 0 (the base model) and every saved step."""
    steps = cfg.pipeline.eval_steps if cfg.pipeline.eval_steps is not None else [0, *sorted(saved)]
    missing = [step for step in steps if step and step not in saved]
    if missing:
        raise TrainingError(
            f"pipeline.eval_steps names steps {missing} that training did not save; saved: {sorted(saved)}"
        )
    return [
        {"model": saved[step] if step else cfg.model.path, "step": step, "benchmark": benchmark}
        for step in dict.fromkeys(steps)
        for benchmark in cfg.eval.benchmarks
    ]


def _train_in_pod(cfg: RunConfig) -> None:
    """Train on this pod: in-process, or one process per accelerator under torchrun."""
    gpus = cfg.pipeline.train.accelerator_count
    if gpus <= 1:
        from emtune.train import trainer

        trainer.run(cfg)
        return
    config_file = Path(cfg.run.out_dir) / "run.yaml"
    atomic_write_text(config_file, dump_config(cfg))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}"]
    command += ["-m", "emtune", "train", "--config", str(config_file)]
    process = subprocess.Popen(command)
    with forwarding(lambda: process.send_signal(signal.SIGTERM)):  # torchrun passes it on to its ranks
        try:
            returncode = process.wait()
        except Stopped:
            # The ranks finish or abandon their push within the grace; leaving first would orphan them.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=cfg.train.stop_grace_s + 5)
            raise
    if returncode != 0:
        raise TrainingError(f"training on {gpus} local processes exited with status {returncode}")


def _train_on_trainjob(cfg: RunConfig, prompts: Path, run_id: str) -> None:
    from emtune.cluster.k8s import KubernetesTrainJobClient, current_namespace
    from emtune.cluster.launcher import LaunchSettings, TrainJobLauncher, cancel_on_sigterm
    from emtune.cluster.trainjob import build_inputs_config_map, build_trainjob, launcher_owner, trainjob_name

    settings = cfg.pipeline.trainjob
    namespace = settings.namespace or current_namespace()
    name = trainjob_name(run_id)
    # Only in our own namespace: an owner in another namespace counts as absent, and the job would be collected.
    owner = launcher_owner(os.environ) if namespace == current_namespace() else None
    job = build_trainjob(cfg, name=name, namespace=namespace, config_map=f"{name}-inputs", owner=owner)
    prompt_bytes = prompts.read_bytes()

    def inputs(uid: str) -> Any:
        return build_inputs_config_map(
            cfg, prompt_bytes, name=f"{name}-inputs", namespace=namespace, owner=job, owner_uid=uid
        )

    launcher = TrainJobLauncher(
        KubernetesTrainJobClient(namespace),
        LaunchSettings(poll_s=settings.poll_s, start_timeout_s=settings.start_timeout_s, timeout_s=settings.timeout_s),
    )
    log.info("launching TrainJob %s in %s (owner: %s)", name, namespace, owner.name if owner else "none")
    with cancel_on_sigterm():
        launcher.run(job, inputs)


def pod_out_dir(out_dir: Path, env: Mapping[str, str]) -> Path:
    """Where a pipeline pod keeps the run folder: a relative one on its scratch volume, not its container layer."""
    scratch = env.get(SCRATCH_ENV)
    return Path(scratch) / out_dir if scratch and not out_dir.is_absolute() else out_dir


@stoppable
def train_step(
    compile_time_config: str, run_parameters: dict[str, Any], prompts_dir: str, run_id: str, metrics_path: str
) -> list[dict[str, Any]]:
    """Train, pushing every saved step to the run's store prefix; returns the evaluation pairs."""
    from emtune.store import open_store

    cfg = run_config(compile_time_config, run_parameters)
    cfg.store.uri = run_store_uri(cfg, run_id)
    prompts = Path(prompts_dir) / PROMPTS_FILE
    cfg.train.prompts = str(prompts)
    cfg.data.field = "problem"  # prep names the problem column so, whatever the source called it
    cfg.run.out_dir = pod_out_dir(cfg.run.out_dir, os.environ)
    if cfg.train.nodes > 1:
        _train_on_trainjob(cfg, prompts, run_id)
    else:
        _train_in_pod(cfg)
    store = open_store(cfg.store.uri, cfg.store)
    saved = {step: store.step_uri(step) for step in store.complete_steps()}
    if not saved:
        raise TrainingError(f"training finished but store {cfg.store.uri!r} holds no complete step")
    _write_train_metrics(cfg, store, sorted(saved), Path(metrics_path))
    return eval_pairs(cfg, saved)


def _write_train_metrics(cfg: RunConfig, store: Any, steps: list[int], out: Path) -> None:
    """Per-step training metrics: the trainer's metrics.jsonl, or (other nodes trained) the store manifests'."""
    local = Path(cfg.run.out_dir) / TRAIN_METRICS_FILE
    if cfg.train.nodes == 1 and local.is_file():
        shutil.copyfile(local, out)
        return
    lines = [json.dumps({"step": step, **store.read_manifest(step).metrics}) for step in steps]
    atomic_write_text(out, "".join(line + "\n" for line in lines))


@stoppable
def eval_step(
    compile_time_config: str, run_parameters: dict[str, Any], model: str, step: int, benchmark: str, out_dir: str
) -> dict[str, Any]:
    from emtune.evaluate.runner import evaluate_pair

    cfg = run_config(compile_time_config, run_parameters)
    return evaluate_pair(cfg, model, benchmark, Path(out_dir), step=step)


@stoppable
def report_step(
    compile_time_config: str,
    run_parameters: dict[str, Any],
    run_id: str,
    eval_dirs: list[str],
    train_metrics: str,
    report_dir: str,
    html_path: str,
    log_metric: Callable[[str, float], None],
) -> Path:
    """Build the report from every pair's results, put it beside the run's steps in the store (where the
    dashboard reads a cluster run's evaluations) and log its headline numbers (the KFP Metrics output)."""
    from emtune.report.build import run as build_report
    from emtune.store import open_store

    cfg = run_config(compile_time_config, run_parameters)
    folders = [Path(d) for d in eval_dirs]
    out = build_report(folders, Path(report_dir), metrics_jsonl=[Path(train_metrics)], promotion=cfg.promote)
    log.info("report in the store: %s", open_store(run_store_uri(cfg, run_id), cfg.store).push_report(out))
    shutil.copyfile(out / "report.html", html_path)
    for name, value in headline_metrics(folders).items():
        log_metric(name, value)
    return out


@stoppable
def promote_step(
    compile_time_config: str, run_parameters: dict[str, Any], run_id: str, report_dir: str, promotion_path: str
) -> dict[str, Any]:
    """Register the step the report's promotion rule chose and move the alias if it promoted it; the outcome
    (decision, numbers, version) is written to `promotion_path` and returned."""
    from emtune.promote.rule import Decision
    from emtune.promote.run import register

    cfg = run_config(compile_time_config, run_parameters)
    results = json.loads((Path(report_dir) / "results.json").read_text(encoding="utf-8"))
    outcome = register(cfg.promote, Decision.from_json(results["promotion"]), run_id, cfg.digest())
    for line in outcome.summary():
        log.info("%s", line)
    atomic_write_json(Path(promotion_path), outcome.to_json())
    return outcome.to_json()


def headline_metrics(eval_dirs: list[Path]) -> dict[str, float]:
    """Accuracy of every (benchmark, step), and each benchmark's gain of its best step over the base model."""
    by_benchmark: dict[str, dict[int, float]] = {}
    for eval_dir in eval_dirs:
        for metrics_file in sorted(eval_dir.glob("*/*/metrics.json")):
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            by_benchmark.setdefault(metrics["benchmark"], {})[int(metrics["step"])] = float(metrics["accuracy"])
    headline: dict[str, float] = {}
    for benchmark, accuracy in sorted(by_benchmark.items()):
        for step, value in sorted(accuracy.items()):
            headline[f"{benchmark}/{step_name(step)}/accuracy"] = value
        if 0 in accuracy:
            headline[f"{benchmark}/best_gain"] = max(accuracy.values()) - accuracy[0]
    return headline
