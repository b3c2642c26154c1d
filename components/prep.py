"""Prepare the prompt set (prompts.parquet + manifest.json) as a dataset artifact."""

from kfp.dsl import Dataset, Output
from kfp.dsl.python_component import PythonComponent

from emtune.config.images import TRAIN_IMAGE

from . import lightweight


def prep(compile_time_config: str, run_parameters: dict, prompts: Output[Dataset]) -> None:
    from emtune.pipeline.steps import prep_step

    prep_step(compile_time_config, run_parameters, prompts.path)


def component(base_image: str = TRAIN_IMAGE) -> PythonComponent:
    return lightweight(prep, base_image)
