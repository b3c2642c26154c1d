"""transformers backend: batched `generate` with the KV cache, on CUDA when present, else CPU."""

from __future__ import annotations

import logging

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from emtune.config.evaluate import EvalConfig
from emtune.evaluate.backends import Completion, GenerationParams
from emtune.model.loading import load_model
from emtune.train.rollout import cut_at_eos

log = logging.getLogger(__name__)


def _eos_ids(model: PreTrainedModel, tokenizer_eos: int | None) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer_eos is not None:
        ids.add(tokenizer_eos)
    return sorted(ids)


class HFBackend:
    name = "hf"

    def __init__(
        self, model_path: str, tokenizer: PreTrainedTokenizerBase, cfg: EvalConfig, dtype: str, trust_remote_code: bool
    ) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype
        self.tokenizer = tokenizer
        self.model = load_model(model_path, dtype, trust_remote_code).eval()
        self.model.to(self.device)
        self.batch_size = cfg.batch_size
        self.static_cache = cfg.hf_static_cache == "on" or (
            cfg.hf_static_cache == "auto" and self.device.type == "cuda"
        )
        self.eos_ids = _eos_ids(self.model, self.tokenizer.eos_token_id)
        # generate() fills every unset field from the model's generation_config (a checkpoint's repetition_penalty,
        # top_k, min_p, ...). Keep only its stop tokens, as vLLM does: sampling comes from the eval config alone.
        self.model.generation_config = GenerationConfig(eos_token_id=self.eos_ids, pad_token_id=tokenizer.pad_token_id)

    def close(self) -> None:
        del self.model
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _generation_config(self, params: GenerationParams) -> GenerationConfig:
        sampled = params.temperature > 0
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sampled,
            temperature=params.temperature if sampled else 1.0,
            top_p=params.top_p if sampled else 1.0,
            top_k=params.top_k,
            repetition_penalty=params.repetition_penalty,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids,
            cache_implementation="static" if self.static_cache else None,
        )

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
        config = self._generation_config(params)
        # Every sample is its own row; rows of similar length share a batch so little of it is padding.
        rows = sorted((index for index in range(len(prompts)) for _ in range(params.n)), key=lambda i: -len(prompts[i]))
        results: list[list[Completion]] = [[] for _ in prompts]
        for number, start in enumerate(range(0, len(rows), self.batch_size)):
            batch = rows[start : start + self.batch_size]
            padded = self.tokenizer.pad(
                {"input_ids": [prompts[i] for i in batch]}, padding=True, padding_side="left", return_tensors="pt"
            ).to(self.device)
            torch.manual_seed(params.seed + number)
            out = self.model.generate(**padded, generation_config=config)
            for index, generated in zip(batch, out[:, padded["input_ids"].shape[1] :].tolist(), strict=True):
                tokens, stopped = cut_at_eos(generated, set(self.eos_ids))
                results[index].append(Completion(tokens, "stop" if stopped else "length"))
            log.debug("generated batch %d (%d rows)", number, len(batch))
        return results
