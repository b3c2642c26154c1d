"""Promotion after the report: the step the report's promotion rule chose registered (MLflow or Kubeflow Model
Registry), the champion alias moved only when the gain is real; the outcome as an artifact."""

from kfp.dsl import Artifact, Input, Output
from kfp.dsl.python_component import PythonComponent

from emtune.config.images import EVAL_IMAGE

from . import lightweight


def promote(
    compile_time_config: str,
    run_parameters: dict,
    run_id: str,
    report: Input[Artifact],
    promotion: Output[Artifact],
) -> None:
    from emtune.pipeline.steps import promote_step

    promote_step(compile_time_config, run_parameters, run_id, report.path, promotion.path)


def component(base_image: str = EVAL_IMAGE) -> PythonComponent:
    return lightweight(promote, base_image)
