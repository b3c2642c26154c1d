"""Evaluate one (checkpoint, benchmark) pair: samples.jsonl + metrics.json under the results artifact."""

from kfp.dsl import Artifact, Output
from kfp.dsl.python_component import PythonComponent

from emtune.config.images import EVAL_IMAGE

from . import lightweight


def evaluate(
    compile_time_config: str, run_parameters: dict, model: str, step: int, benchmark: str, results: Output[Artifact]
) -> dict:
    from emtune.pipeline.steps import eval_step

    return eval_step(compile_time_config, run_parameters, model, step, benchmark, results.path)


def component(base_image: str = EVAL_IMAGE) -> PythonComponent:
    return lightweight(evaluate, base_image)
