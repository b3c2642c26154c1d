"""The stale-sync guard: the rollout engine's log-probs of the tokens it sampled against the trainer's own.

An engine with its own copy of the weights (vLLM) reports log p(y_t) for every token it sampled; the trainer
computes the same numbers in the loss forward it runs anyway. They differ only by numerics (kernels, dtype)
unless the engine's weights are not the trainer's, which is what a missed or broken weight sync looks like,
and where it shows up first. Both sides use the model's unmodified distribution (temperature 1, no top-p).
"""

from __future__ import annotations

import torch

from emtune.errors import TrainingError


def sampled_logprobs(logits: torch.Tensor, tokens: torch.Tensor, chunk_tokens: int = 1024) -> torch.Tensor:
    """log softmax(logits)[token] at every position, float32 [B, N], without a float32 [B, N, V] copy.

    `logits` is [B, N, V] (row j is the distribution that produced `tokens[:, j]`), `tokens` [B, N].
    """
    flat_logits = logits.detach().flatten(0, 1)
    flat_tokens = tokens.flatten()
    pieces = []
    for lo in range(0, flat_logits.shape[0], chunk_tokens):
        chunk = flat_logits[lo : lo + chunk_tokens].float()
        chosen = chunk.gather(1, flat_tokens[lo : lo + chunk_tokens, None]).squeeze(1)
        pieces.append(chosen - chunk.logsumexp(dim=-1))
    return torch.cat(pieces).view(tokens.shape)


def check_logprob_gap(metrics: dict, threshold: float) -> None:
    """Fail the run when the step's mean per-token gap exceeds `threshold` (0: never)."""
    gap = metrics.get("logprob_gap")
    if gap is None or threshold <= 0 or gap <= threshold:
        return
    raise TrainingError(
        f"rollout engine's log-probs differ from the trainer's by {gap:.4g} nats per token at step "
        f"{metrics['step']} (max {metrics.get('logprob_gap_max', float('nan')):.4g}); train.max_logprob_gap "
        f"allows {threshold:g}: the engine is sampling with stale weights (a missed weight sync) or with "
        "numerics far from the trainer's"
    )
