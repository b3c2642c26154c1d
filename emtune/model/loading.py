"""Resolve a model spec (local folder, hub id, the embedded tiny model, random:<shape>) and load it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from emtune.errors import ModelError
from emtune.model.shapes import RANDOM_PREFIX, random_model
from emtune.model.tiny import write_tiny_model
from emtune.model.tiny_math import TINY_MATH_DIR

log = logging.getLogger(__name__)

BUILTIN_TINY = "builtin:tiny"
BUILTIN_TINY_MATH = "builtin:tiny-math"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_dir() -> Path:
    return Path(os.environ.get("EMTUNE_CACHE", Path.home() / ".cache" / "emtune"))


def _looks_local(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or spec.count("/") != 1 or os.sep + os.sep in spec


def resolve_model(spec: str) -> str:
    """Return a local folder or hub id that transformers can load; materialise builtin:tiny once (builtin:tiny-math
    ships inside the package)."""
    if spec == BUILTIN_TINY:
        path = cache_dir() / "tiny-qwen2-v1"
        if not (path / "config.json").is_file():
            log.info("writing the embedded tiny model to %s", path)
            write_tiny_model(path)
        return str(path)
    if spec == BUILTIN_TINY_MATH:
        return str(TINY_MATH_DIR)
    if spec.startswith("builtin:"):
        raise ModelError(f"unknown built-in model {spec!r}; allowed: {BUILTIN_TINY!r}, {BUILTIN_TINY_MATH!r}")
    local = Path(spec).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelError(f"model folder {spec!r} has no config.json (not a transformers model folder)")
        return str(local)
    if _looks_local(spec):
        raise ModelError(f"model path {spec!r} does not exist (expected a local folder or a hub id 'org/name')")
    return spec


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    # A random-weights model (benchmarks) speaks the tiny model's tokenizer: ids only, never decoded.
    where = resolve_model(BUILTIN_TINY if spec.startswith(RANDOM_PREFIX) else spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {spec!r}: {str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, dtype: str = "float32", trust_remote_code: bool = False) -> PreTrainedModel:
    if spec.startswith(RANDOM_PREFIX):
        tokenizer = load_tokenizer(spec)
        return random_model(spec, _DTYPES[dtype], tokenizer.pad_token_id, tokenizer.eos_token_id)
    where = resolve_model(spec)
    try:
        return AutoModelForCausalLM.from_pretrained(where, dtype=_DTYPES[dtype], trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a causal LM from {spec!r}: {str(exc).splitlines()[0]}") from None
