"""Data-preparation settings (`emtune prep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from emtune.config_base import Section

PromptFormat = Literal["chat", "qwen25-math-cot", "raw"]


class DataConfig(Section):
    source: str | None = Field(None, description="Problems to prepare: a local file, hf://org/name, or s3://bucket/key.")
    field: str = Field("problem", min_length=1, description="Column holding the problem text.")
    prompt_format: PromptFormat = Field("chat", description="How a problem becomes the model's prompt.")
    output: Path | None = Field(None, description="Folder `emtune prep` writes; unset: <run.out_dir>/data.")
