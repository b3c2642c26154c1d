"""The entropy-minimisation loss, exactly as docs/training.md ("The loss, exactly") defines it, for emtune's trainer
and for yours.

For a completion y_P..y_{P+n-1} after a (left-padded) prompt of P positions, the distribution that produced
y_t is softmax(logits[t-1] / T). The loss averages the entropy H_t = -sum_v p_v log p_v of exactly those n
distributions: the first generated token counts, the position after the last does not, and pads, prompt
tokens and anything after EOS never do.

Entropies are computed in float32 chunks of at most `chunk_tokens` rows of [tokens x vocab], each under
activation checkpointing: on top of the logits themselves (whole, in the model's dtype), at most one float32
chunk of temporaries is alive at a time in forward and in backward. With bf16 logits that avoids a float32 copy
of them all; float32 logits are already whole in float32, and chunking bounds only the temporaries.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.utils.checkpoint import checkpoint

Reduction = Literal["token_mean", "sequence_mean", "last_k"]
REDUCTIONS: tuple[str, ...] = ("token_mean", "sequence_mean", "last_k")


def _chunk_entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    # -sum p log p from log_softmax is the most accurate float32 form (measured against float64).
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    return -(log_probs.exp() * log_probs).sum(-1)


def position_entropy(
    logits: torch.Tensor, active: torch.Tensor, temperature: float = 1.0, chunk_tokens: int = 1024
) -> torch.Tensor:
    """Entropy of softmax(logits[b, i] / T) at each active position; zero elsewhere.

    `logits` is [B, N, V] (any float dtype), `active` a bool [B, N] on any device. Returns float32 [B, N]. Only
    the span of each row from its first to its last active position is computed, in checkpointed float32 chunks.
    """
    batch, length, _ = logits.shape
    needs_grad = torch.is_grad_enabled() and logits.requires_grad
    # The spans are read on the host; an `active` that lives there (the trainer's) costs no device sync.
    host_active = active.cpu()
    rows = []
    for b in range(batch):
        positions = host_active[b].nonzero().flatten()
        if positions.numel() == 0:
            rows.append(logits.new_zeros(length, dtype=torch.float32))
            continue
        start, stop = int(positions[0]), int(positions[-1]) + 1
        pieces = [logits.new_zeros(start, dtype=torch.float32)]
        for lo in range(start, stop, chunk_tokens):
            chunk = logits[b, lo : min(lo + chunk_tokens, stop)]
            if needs_grad:
                pieces.append(checkpoint(_chunk_entropy, chunk, temperature, use_reentrant=False))
            else:
                pieces.append(_chunk_entropy(chunk, temperature))
        pieces.append(logits.new_zeros(length - stop, dtype=torch.float32))
        rows.append(torch.cat(pieces))
    return torch.stack(rows) * active.to(logits.device)


def reduction_terms(
    active: torch.Tensor, reduction: Reduction = "token_mean", last_k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position weight numerators and the denominator of a reduction over `active` [B, N] positions.

    The loss is sum(entropy * numerators) / denominator. Keeping the two apart lets a trainer add up the
    denominators of every micro-batch and rank of a step, so the update does not depend on how the step's
    rollouts were split.
    """
    mask = active.float()
    if reduction == "token_mean":
        return mask, mask.sum()
    if reduction == "sequence_mean":
        lengths = mask.sum(dim=1, keepdim=True)
        has_tokens = lengths > 0
        return mask / lengths.clamp(min=1), has_tokens.float().sum()
    if reduction == "last_k":
        if last_k is None or last_k < 1:
            raise ValueError(f"reduction 'last_k' needs last_k >= 1, got {last_k!r}")
        from_end = mask.flip(1).cumsum(1).flip(1)  # 1 at the last active position, 2 before it, ...
        selected = mask * (from_end <= last_k)
        return selected, selected.sum()
    raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")


def entropy_loss(
    logits: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 1.0,
    reduction: Reduction = "token_mean",
    last_k: int | None = None,
    chunk_tokens: int = 1024,
) -> torch.Tensor:
    """Mean entropy of the model's next-token distributions over its own generated tokens.

    Args:
        logits: [B, L, V] logits of a causal LM over the full sequences (prompt + completion), as returned
            by ``model(input_ids, attention_mask=..., position_ids=...).logits``.
        mask: [B, L] bool, aligned with ``input_ids``: True at the real generated tokens (up to and including
            EOS; False on prompt, padding and anything after EOS).
        temperature: T in softmax(logits / T).
        reduction: ``token_mean`` (every generated token weighs the same), ``sequence_mean`` (mean of the
            per-sequence means) or ``last_k`` (token mean over the last ``last_k`` tokens of each completion).
        chunk_tokens: rows of the float32 [tokens x vocab] chunk.

    Returns:
        A float32 scalar. The distribution predicting the token at position t is read at t - 1, so the mask
        is shifted by one internally; position ids are the caller's business (derive them from the
        attention mask when sequences are left-padded).
    """
    if logits.dim() != 3 or mask.shape != logits.shape[:2]:
        raise ValueError(f"logits must be [B, L, V] and mask [B, L]; got {tuple(logits.shape)} and {tuple(mask.shape)}")
    active = mask[:, 1:].bool()
    entropies = position_entropy(logits[:, :-1], active, temperature, chunk_tokens)
    numerators, denominator = reduction_terms(active, reduction, last_k)
    return (entropies * numerators).sum() / denominator.clamp(min=1)
