"""The report over every evaluated pair: the full folder (also put in the run's store prefix), its HTML page, and the
headline numbers as Metrics."""

from typing import List  # noqa: UP035  KFP reads the annotation from the component's source

from kfp.dsl import HTML, Artifact, Input, Metrics, Output
from kfp.dsl.python_component import PythonComponent

from emtune.config.images import EVAL_IMAGE

from . import lightweight


def report(
    compile_time_config: str,
    run_parameters: dict,
    run_id: str,
    eval_results: Input[List[Artifact]],  # noqa: UP006
    train_metrics: Input[Artifact],
    report: Output[Artifact],
    html: Output[HTML],
    metrics: Output[Metrics],
) -> None:
    from emtune.pipeline.steps import report_step

    report_step(
        compile_time_config, run_parameters, run_id, [r.path for r in eval_results], train_metrics.path,
        report.path, html.path, metrics.log_metric,
    )  # fmt: skip


def component(base_image: str = EVAL_IMAGE) -> PythonComponent:
    return lightweight(report, base_image)
