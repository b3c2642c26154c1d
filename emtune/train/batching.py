"""Turn rollouts into training micro-batches: left-padded prompt, right-padded completion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from emtune.train.rollout import Rollout


@dataclass(frozen=True)
class MicroBatch:
    input_ids: torch.Tensor  # [B, P + N]
    attention_mask: torch.Tensor  # [B, P + N]: prompt tokens and real completion tokens
    position_ids: torch.Tensor  # [B, P + N]: from the attention mask, so left padding does not shift them
    logits_to_keep: torch.Tensor  # [N] positions P-1 .. P+N-2: the distributions that produced tokens P .. P+N-1
    completion_mask: torch.Tensor  # [B, N] bool: real generated tokens (up to and including EOS)
    # [B, N] float32: the rollout engine's log-prob of each completion token (0 elsewhere); None when it has none
    rollout_logprobs: torch.Tensor | None = None

    def to(self, device: torch.device) -> MicroBatch:
        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.to(device, non_blocking=True)

        logprobs = None if self.rollout_logprobs is None else move(self.rollout_logprobs)
        return MicroBatch(
            move(self.input_ids), move(self.attention_mask), move(self.position_ids), move(self.logits_to_keep),
            move(self.completion_mask), logprobs,
        )  # fmt: skip


def collate(rollouts: Sequence[Rollout], pad_id: int) -> MicroBatch:
    prompt_width = max(len(r.prompt_ids) for r in rollouts)
    completion_width = max(1, max(len(r.completion_ids) for r in rollouts))
    batch = len(rollouts)
    input_ids = torch.full((batch, prompt_width + completion_width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    completion_mask = torch.zeros((batch, completion_width), dtype=torch.bool)
    with_logprobs = all(r.logprobs is not None for r in rollouts)
    rollout_logprobs = torch.zeros((batch, completion_width), dtype=torch.float32) if with_logprobs else None
    for row, rollout in enumerate(rollouts):
        start = prompt_width - len(rollout.prompt_ids)
        end = prompt_width + len(rollout.completion_ids)
        input_ids[row, start:prompt_width] = torch.tensor(rollout.prompt_ids, dtype=torch.long)
        if rollout.completion_ids:
            input_ids[row, prompt_width:end] = torch.tensor(rollout.completion_ids, dtype=torch.long)
        attention_mask[row, start:end] = 1
        completion_mask[row, : len(rollout.completion_ids)] = True
        if rollout_logprobs is not None and rollout.completion_ids:
            rollout_logprobs[row, : len(rollout.completion_ids)] = torch.tensor(rollout.logprobs)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits_to_keep = torch.arange(prompt_width - 1, prompt_width + completion_width - 1)
    return MicroBatch(input_ids, attention_mask, position_ids, logits_to_keep, completion_mask, rollout_logprobs)
