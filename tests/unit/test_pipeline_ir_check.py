"""The IR check (KFP 2.17's driver and compiler rules) over every pipeline emtune compiles, and over planted
defects it must catch. The chart hook's value sets are checked in tests/chart/test_hook_pipeline.py."""

# No `from __future__ import annotations`: KFP reads the tiny components' annotations as types.

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from common import alias_workflows
from kfp import compiler, dsl

from emtune.config import load_config
from emtune.pipeline.ir_check import check_compiled_yaml, check_ir

alias_workflows()

from emtune.workflows.emtune_pipeline import COMPILED_YAML, build_pipeline, compile_pipeline  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "single-node": {"train.nodes": 1},
    "multi-node": {"train.nodes": 2, "store.uri": "s3://bucket/runs"},
    "gpus-no-secrets-no-retries": {
        "pipeline.train": {"accelerator_count": 8},
        "pipeline.eval": {"accelerator_count": 2},
        "pipeline.s3_secret": None,
        "pipeline.wandb_secret": None,
        "pipeline.eval_retries": 0,
    },
    "chosen-steps": {"pipeline.eval_steps": [0, 5], "pipeline.parallelism": 1},
}


def committed() -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = yaml.safe_load_all(COMPILED_YAML.read_text(encoding="utf-8"))
    return spec, platform["platforms"]["kubernetes"]


def test_committed_yaml_resolves() -> None:
    assert check_compiled_yaml(COMPILED_YAML.read_text(encoding="utf-8")) == []


def test_committed_fan_out_reads_a_declared_container_output() -> None:
    """The loop's items come from a container task (the pass-through), not from the If/Else block's OneOf."""
    spec, _ = committed()
    (loop,) = [t for name, t in spec["root"]["dag"]["tasks"].items() if "parameterIterator" in t]
    items = loop["parameterIterator"]["items"]["inputParameter"]
    source = loop["inputs"]["parameters"][items]["taskOutputParameter"]
    producer = spec["root"]["dag"]["tasks"][source["producerTask"]]
    assert "dag" not in spec["components"][producer["componentRef"]["name"]]
    # ...and that task reads the OneOf, whose selectors name both train branches.
    (oneof,) = producer["inputs"]["parameters"].values()
    branches = oneof["taskOutputParameter"]
    block = spec["components"][spec["root"]["dag"]["tasks"][branches["producerTask"]]["componentRef"]["name"]]
    selectors = block["dag"]["outputs"]["parameters"][branches["outputParameterKey"]]["valueFromOneof"]
    assert len(selectors["parameterSelectors"]) == 2


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_resolves(tmp_path: Path, variant: str) -> None:
    path = compile_pipeline(load_config(None, VARIANTS[variant]), tmp_path / "p.yaml")
    assert check_compiled_yaml(path.read_text(encoding="utf-8")) == []


def test_local_graph_resolves(tmp_path: Path) -> None:
    """The one-train-task graph kfp.local runs compiles for a backend too."""
    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(build_pipeline(load_config(None, {}), local=True), str(path))
    assert check_compiled_yaml(path.read_text(encoding="utf-8")) == []


# --- the defect that motivated the check, reproduced with kfp itself -------------------------------------------


@dsl.component(base_image="python:3.11")
def make_items(n: int) -> list:
    return list(range(n))


@dsl.component(base_image="python:3.11")
def use_item(item: int) -> int:
    return item


@dsl.component(base_image="python:3.11")
def relay(items: list) -> list:
    return items


def oneof_pipeline(*, pass_through: bool) -> Callable[..., Any]:
    @dsl.pipeline(name="oneof-fan-out")
    def pipe(flag: bool = True) -> None:
        with dsl.If(flag == True):  # noqa: E712  KFP builds the condition from the operator
            a = make_items(n=2)
        with dsl.Else():
            b = make_items(n=3)
        items = dsl.OneOf(a.output, b.output)
        if pass_through:
            items = relay(items=items).output
        with dsl.ParallelFor(items) as item:
            use_item(item=item)

    return pipe


def test_kfp_drops_oneof_selectors_before_a_parallel_for_and_the_check_sees_it(tmp_path: Path) -> None:
    broken, fixed = tmp_path / "broken.yaml", tmp_path / "fixed.yaml"
    compiler.Compiler().compile(oneof_pipeline(pass_through=False), str(broken))
    compiler.Compiler().compile(oneof_pipeline(pass_through=True), str(fixed))
    problems = check_compiled_yaml(broken.read_text(encoding="utf-8"))
    assert len(problems) == 1 and "oneof" in problems[0] and "does not declare" in problems[0], problems
    assert check_compiled_yaml(fixed.read_text(encoding="utf-8")) == []


# --- planted defects on the committed pipeline --------------------------------------------------------------


def root_tasks(spec: dict[str, Any]) -> dict[str, Any]:
    tasks: dict[str, Any] = spec["root"]["dag"]["tasks"]
    return tasks


def named(spec: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
    (name,) = [n for n in root_tasks(spec) if n.startswith(prefix)]
    return name, root_tasks(spec)[name]


def drop_oneof_selectors(spec: dict[str, Any]) -> None:
    _, block = named(spec, "condition-branches")
    outputs = spec["components"][block["componentRef"]["name"]]["dag"]["outputs"]
    for param in outputs["parameters"].values():
        param["valueFromOneof"]["parameterSelectors"] = []


def dangle_task_output(spec: dict[str, Any]) -> None:
    _, pairs = named(spec, "eval-pairs")
    pairs["inputs"]["parameters"]["pairs"]["taskOutputParameter"]["outputParameterKey"] = "no-such-output"


def dangle_producer(spec: dict[str, Any]) -> None:
    report = root_tasks(spec)["report"]
    report["inputs"]["artifacts"]["train_metrics"]["taskOutputArtifact"]["producerTask"] = "train-gone"


def dangle_collected(spec: dict[str, Any]) -> None:
    _, loop = named(spec, "for-loop")
    spec["components"][loop["componentRef"]["name"]]["dag"]["outputs"]["artifacts"].clear()


def dangle_loop_items(spec: dict[str, Any]) -> None:
    _, loop = named(spec, "for-loop")
    loop["parameterIterator"]["items"]["inputParameter"] = "pipelinechannel--gone"


def dangle_component_input(spec: dict[str, Any]) -> None:
    root_tasks(spec)["prep"]["inputs"]["parameters"]["train_seed"] = {"componentInputParameter": "train_sed"}


def dangle_condition(spec: dict[str, Any]) -> None:
    _, block = named(spec, "condition-branches")
    branches = spec["components"][block["componentRef"]["name"]]["dag"]["tasks"]
    branch = next(iter(branches.values()))
    branch["triggerPolicy"]["condition"] = "int(inputs.parameter_values['pipelinechannel--train_nods']) > 1"


def retry_with_bad_backoff(spec: dict[str, Any]) -> None:
    _, loop = named(spec, "for-loop")
    (evaluate,) = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"].values()
    evaluate["retryPolicy"]["backoffDuration"] = "60"


def retry_on_a_dag(spec: dict[str, Any]) -> None:
    _, loop = named(spec, "for-loop")
    loop["retryPolicy"] = {"maxRetryCount": 2, "backoffDuration": "60s", "backoffFactor": 2.0}


def drop_required_input(spec: dict[str, Any]) -> None:
    del root_tasks(spec)["prep"]["inputs"]["parameters"]["compile_time_config"]


def drop_executor(spec: dict[str, Any]) -> None:
    del spec["deploymentSpec"]["executors"]["exec-report"]


PLANTED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "oneof without selectors": (drop_oneof_selectors, "no selectors"),
    "undeclared output key": (dangle_task_output, "'no-such-output'"),
    "unknown producer": (dangle_producer, "'train-gone' is not a task"),
    "collected fan-in without loop outputs": (dangle_collected, "not found in DAG"),
    "loop items not an input": (dangle_loop_items, "loop items"),
    "component input the parent lacks": (dangle_component_input, "parent DAG does not have input parameter"),
    "condition on a missing input": (dangle_condition, "condition reads"),
    "retry backoff not a duration": (retry_with_bad_backoff, "not a duration"),
    "retry on a DAG task": (retry_on_a_dag, "not applied"),
    "required input missing": (drop_required_input, "required parameter 'compile_time_config'"),
    "missing executor": (drop_executor, "'exec-report'"),
}


@pytest.mark.parametrize("defect", sorted(PLANTED))
def test_planted_defect_is_reported(defect: str) -> None:
    plant, expected = PLANTED[defect]
    spec, platform = committed()
    assert check_ir(spec, platform) == []
    broken = copy.deepcopy(spec)
    plant(broken)
    problems = check_ir(broken, platform)
    assert problems and any(expected in p for p in problems), problems


def test_platform_spec_for_an_unknown_executor_is_reported() -> None:
    spec, platform = committed()
    platform = copy.deepcopy(platform)
    platform["deploymentSpec"]["executors"]["exec-gone"] = {}
    assert check_ir(spec, platform) == ["platform spec: executor 'exec-gone' configures no executor of the pipeline"]


def test_compile_refuses_a_graph_the_backend_cannot_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compile_pipeline checks before it writes: a broken graph leaves no YAML behind."""
    import emtune.workflows.emtune_pipeline as workflow

    monkeypatch.setattr(workflow, "build_pipeline", lambda cfg: oneof_pipeline(pass_through=False))
    with pytest.raises(RuntimeError, match=r"would not resolve on KFP 2\.17"):
        workflow.compile_pipeline(load_config(None, {}), tmp_path / "p.yaml")
    assert not (tmp_path / "p.yaml").exists()
