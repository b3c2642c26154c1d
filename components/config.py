"""First task: the run's validated config, from the compiled-in settings and the run's parameters."""

from kfp.dsl.python_component import PythonComponent

from emtune.cluster.images import TRAIN_IMAGE

from . import lightweight


def config(compile_time_config: str, overrides: str) -> str:
    from emtune.pipeline.steps import config_step

    return config_step(compile_time_config, overrides)


def component(base_image: str = TRAIN_IMAGE) -> PythonComponent:
    return lightweight(config, base_image)
