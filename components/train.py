"""Train (in this pod, or as a multi-node TrainJob), pushing each saved step to the run's store prefix.

Returns the (checkpoint URI, step, benchmark) pairs to evaluate; checkpoints never become artifacts.
"""

from kfp.dsl import Artifact, Dataset, Input, Output
from kfp.dsl.python_component import PythonComponent

from emtune.config.images import TRAIN_IMAGE

from . import lightweight


def train(
    compile_time_config: str, run_parameters: dict, prompts: Input[Dataset], run_id: str, metrics: Output[Artifact]
) -> list:
    from emtune.pipeline.steps import train_step

    return train_step(compile_time_config, run_parameters, prompts.path, run_id, metrics.path)


def component(base_image: str = TRAIN_IMAGE) -> PythonComponent:
    return lightweight(train, base_image)
