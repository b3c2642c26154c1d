"""The container images the Helm chart installs; components and TrainJobs default to these (one place)."""

from __future__ import annotations

from emtune import __version__

IMAGE_REGISTRY = "ghcr.io/emtune"
# Training: torch, DeepSpeed and emtune; also runs prep and the pipeline's bookkeeping steps.
TRAIN_IMAGE = f"{IMAGE_REGISTRY}/emtune-train:{__version__}"
# Evaluation: vLLM, math-verify, matplotlib and emtune; also renders the report.
EVAL_IMAGE = f"{IMAGE_REGISTRY}/emtune-eval:{__version__}"
