"""Promotion settings (`promote:` section): which step counts as best, when its gain over the base model is real
enough to promote, and the model registry it is registered in (`emtune promote`, the pipeline's promote step)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from emtune.config.base import Section

# The per-problem metrics the paired test can be run on: avg@n ("accuracy"), greedy accuracy, pass@k.
METRIC_PATTERN = r"^(accuracy|greedy|pass@[1-9][0-9]*)$"


class PromoteConfig(Section):
    enabled: bool = Field(False, description="Run the pipeline's promote step after the report.")
    metric: str = Field(
        "accuracy",
        pattern=METRIC_PATTERN,
        description="What the best step is chosen by: 'accuracy' (avg@n), 'greedy' (needs eval.greedy) or 'pass@k'.",
    )
    benchmarks: list[str] | None = Field(
        None,
        min_length=1,
        description="Benchmarks the metric is averaged over (unweighted); unset: every one evaluated.",
    )
    margin: float = Field(
        0.01, ge=0, le=1, description="Least gain over step 0 that counts, in accuracy units (0.01 = one point)."
    )
    alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="Significance level of the one-sided paired test, split over the steps the best was chosen from.",
    )
    registry: Literal["mlflow", "kubeflow"] = Field(
        "mlflow", description="Model registry: MLflow Model Registry, or Kubeflow Model Registry."
    )
    registry_uri: str | None = Field(
        None,
        description="mlflow: tracking URI (http(s)://, sqlite:///...); kubeflow: the server's http(s)://host:port. "
        "Unset: a local MLflow store beside the runs (local runs only).",
    )
    model_name: str = Field("emtune", min_length=1, max_length=200, description="Registered model's name.")
    alias: str = Field(
        "champion",
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$",
        description="Alias (mlflow) or registered-model property (kubeflow) moved to a promoted version.",
    )
    storage_key: str | None = Field(
        None, description="kubeflow: the data connection (secret) that reads the store, recorded on the artifact."
    )
