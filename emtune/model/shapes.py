"""Randomly initialised models of real architectures, for benchmarks: compute cost does not depend on the
weights' values, so `random:qwen2.5-math-1.5b` times like the real model without downloading it."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from emtune.errors import ModelError

RANDOM_PREFIX = "random:"
# Public architecture hyper-parameters of the Qwen2.5-Math models, plus a small big-vocabulary shape.
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-math-1.5b": dict(
        hidden_size=1536,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        intermediate_size=8960,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "qwen2.5-math-7b": dict(
        hidden_size=3584,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        intermediate_size=18944,
        vocab_size=152064,
        tie_word_embeddings=False,
    ),
    "qwen2-small": dict(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
}


def random_model(spec: str, dtype: torch.dtype, pad_id: int, eos_id: int, seed: int = 0) -> Qwen2ForCausalLM:
    name = spec.removeprefix(RANDOM_PREFIX)
    if name not in SHAPES:
        raise ModelError(f"unknown random model shape {name!r}; allowed: {', '.join(SHAPES)}")
    config = Qwen2Config(
        **SHAPES[name], max_position_embeddings=4096, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None
    )
    torch.manual_seed(seed)
    # Initialised on the GPU when there is one: a 7B shape takes minutes to initialise on the host.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config)
    model.to(dtype)  # type: ignore[arg-type]  # transformers' typed wrapper of Module.to
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    return model
