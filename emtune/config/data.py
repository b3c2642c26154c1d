"""Data-preparation settings (`emtune prep`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from emtune.config.base import Section

PromptFormat = Literal["chat", "qwen25-math-cot", "raw"]
SourceFormat = Literal["auto", "parquet", "jsonl", "json", "csv"]
PrepMode = Literal["one_shot", "multi_shot"]

_SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(spec: str) -> tuple[int, int]:
    """'k/n' -> (k, n) with 0 <= k < n (shards are numbered from 0, like ranks)."""
    match = _SHARD.match(spec.strip())
    if not match or int(match.group(1)) >= int(match.group(2)):
        raise ValueError(f"shard {spec!r} must be k/n with 0 <= k < n, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))


class DataConfig(Section):
    source: str | None = Field(
        None, description="Problems to prepare: a .parquet/.jsonl/.json/.csv file, hf://org/name or s3://bucket/key."
    )
    format: SourceFormat = Field("auto", description="Source file format; 'auto' goes by the file name's suffix.")
    field: str = Field("problem", min_length=1, description="Column holding the problem text (a.b for nested).")
    id_field: str = Field("id", min_length=1, description="Column carried along as the problem id when present.")
    answer_field: str = Field(
        "answer",
        min_length=1,
        description="Column carried along as the reference answer when present (e.g. reward_model.ground_truth).",
    )
    mode: PrepMode = Field(
        "one_shot", description="one_shot: a single problem (the paper's recipe); multi_shot: many unique problems."
    )
    index: int | None = Field(None, ge=0, description="one_shot: pick the problem at this source row (from 0).")
    id: str | None = Field(None, min_length=1, description="one_shot: pick the problem with this id.")
    text: str | None = Field(None, min_length=1, description="one_shot: pick the problem with exactly this text.")
    sample: int | None = Field(None, ge=1, description="multi_shot: keep a seeded random sample of N unique problems.")
    seed: int | None = Field(None, ge=0, description="multi_shot: seed of the sample; unset: run.seed.")
    shard: str | None = Field(None, description="multi_shot: keep only shard k of n ('k/n', 0 <= k < n).")
    prompt_format: PromptFormat = Field("chat", description="How a problem becomes the model's prompt.")
    output: Path | None = Field(None, description="Folder `emtune prep` writes; unset: <run.out_dir>/data.")

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value  # --set data.id=7

    @field_validator("shard")
    @classmethod
    def _valid_shard(cls, spec: str | None) -> str | None:
        if spec is not None:
            parse_shard(spec)
        return spec

    @model_validator(mode="after")
    def _selection_fits_mode(self) -> DataConfig:
        picks = [name for name in ("index", "id", "text") if getattr(self, name) is not None]
        subset = [name for name in ("sample", "shard") if getattr(self, name) is not None]
        if self.mode == "one_shot" and subset:
            raise ValueError(f"{' and '.join(subset)} apply to mode multi_shot only; one_shot picks by index/id/text")
        if self.mode == "multi_shot" and picks:
            raise ValueError(f"{' and '.join(picks)} apply to mode one_shot only; multi_shot takes sample/shard")
        if len(picks) > 1:
            raise ValueError(f"pick the one-shot problem by one of index, id or text, not {' and '.join(picks)}")
        return self
