"""The container images emtune runs in (built from images/ by `make images`); components and TrainJobs default to
these, the Helm chart installs them. References derive from emtune's version; the registry is a parameter."""

from __future__ import annotations

from typing import Literal

from emtune import __version__

Role = Literal["train", "eval", "dashboard"]
ROLES: tuple[Role, ...] = ("train", "eval", "dashboard")
IMAGE_REGISTRY = "ghcr.io/emtune"


def image_ref(role: Role, registry: str = IMAGE_REGISTRY, tag: str = __version__) -> str:
    """`<registry>/emtune-<role>:<tag>`, the name images/build.sh gives the image it builds for `role`."""
    return f"{registry.rstrip('/')}/emtune-{role}:{tag}"


# Training: torch, DeepSpeed and emtune; also runs prep and the pipeline's bookkeeping steps.
TRAIN_IMAGE = image_ref("train")
# Evaluation: vLLM, math-verify, matplotlib and emtune; also renders the report.
EVAL_IMAGE = image_ref("eval")
# The dashboard and the chart's pipeline-registration job: kfp and emtune, no torch.
DASHBOARD_IMAGE = image_ref("dashboard")
