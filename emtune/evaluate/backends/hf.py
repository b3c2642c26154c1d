"""transformers backend: batched KV-cache `generate` (`emtune.model.generate`), on CUDA when present, else CPU."""

from __future__ import annotations

import logging

import torch
from transformers import PreTrainedTokenizerBase

from emtune.config.evaluate import EvalConfig
from emtune.evaluate.backends import Completion, GenerationParams
from emtune.model.generate import generate_batch
from emtune.model.loading import load_model

log = logging.getLogger(__name__)


class HFBackend:
    name = "hf"

    def __init__(
        self,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
        cfg: EvalConfig,
        dtype: str,
        trust_remote_code: bool,
        stop_ids: list[int],
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
        self.eos_ids = stop_ids

    def close(self) -> None:
        del self.model
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def generate(self, prompts: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
        # Every sample is its own row; rows of similar length share a batch so little of it is padding.
        rows = sorted((index for index in range(len(prompts)) for _ in range(params.n)), key=lambda i: -len(prompts[i]))
        results: list[list[Completion]] = [[] for _ in prompts]
        for number, start in enumerate(range(0, len(rows), self.batch_size)):
            batch = rows[start : start + self.batch_size]
            completions = generate_batch(
                self.model, [prompts[i] for i in batch], seed=params.seed + number, eos_ids=self.eos_ids,
                pad_id=self.tokenizer.pad_token_id, max_new_tokens=params.max_new_tokens,
                temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                repetition_penalty=params.repetition_penalty, static_cache=self.static_cache,
            )  # fmt: skip
            for index, (tokens, stopped) in zip(batch, completions, strict=True):
                results[index].append(Completion(tokens, "stop" if stopped else "length"))
            log.debug("generated batch %d (%d rows)", number, len(batch))
        return results
