"""The (checkpoint URI, step, benchmark) pairs the evaluation fan-out iterates over, handed on unchanged.

Why this is a task of its own: the train step runs in one of two branches (in its pod, or as a TrainJob), and
kfp 2.17.3 compiles a `dsl.OneOf` that feeds only a `ParallelFor` without the OneOf's parameter selectors, so
KFP's driver cannot resolve the loop's items ("does not have a parameter_producer_task custom property").
Through this task the loop reads an output that a container task declares (emtune.pipeline.ir_check checks it).
"""

from kfp.dsl.python_component import PythonComponent

from emtune.config.images import EVAL_IMAGE

from . import lightweight


def eval_pairs(pairs: list) -> list:
    return pairs


def component(base_image: str = EVAL_IMAGE) -> PythonComponent:
    return lightweight(eval_pairs, base_image)
