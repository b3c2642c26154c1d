"""The entropy loss against a float64 reference, masking and positions built by hand."""

from __future__ import annotations

import pytest
import torch

from emtune.losses import entropy_loss, position_entropy, reduction_terms
from emtune.train.batching import collate
from emtune.train.rollout import Rollout

VOCAB = 301


def reference_loss(logits: torch.Tensor, mask: torch.Tensor, temperature: float, reduction: str, last_k: int = 0):
    """Straightforward float64 implementation of docs/training.md's definition ("The loss, exactly"), one sequence
    at a time."""
    logits = logits.double() / temperature
    per_sequence, all_tokens = [], []
    for b in range(logits.shape[0]):
        positions = [t for t in range(logits.shape[1]) if mask[b, t]]  # generated tokens y_t
        values = []
        for t in positions:
            p = torch.softmax(logits[b, t - 1], dim=-1)  # the distribution that produced y_t
            values.append(float(-(p * torch.log(p)).sum()))
        if reduction == "last_k":
            values = values[-last_k:]
        if values:
            per_sequence.append(sum(values) / len(values))
        all_tokens.extend(values)
    if reduction == "sequence_mean":
        return sum(per_sequence) / len(per_sequence)
    return sum(all_tokens) / len(all_tokens)


def padded_batch(seed: int = 0, dtype: torch.dtype = torch.float32):
    """Three sequences, left-padded prompts of different lengths, EOS mid-sequence in one, right padding."""
    gen = torch.Generator().manual_seed(seed)
    length = 14
    logits = (torch.randn(3, length, VOCAB, generator=gen) * 4).to(dtype)
    mask = torch.zeros(3, length, dtype=torch.bool)
    mask[0, 6:14] = True  # prompt of 6 (with 2 pads on the left), 8 generated tokens
    mask[1, 6:9] = True  # EOS at position 8: everything after it is padding
    mask[2, 6:7] = True  # a single generated token (EOS right away)
    return logits, mask


@pytest.mark.parametrize("reduction", ["token_mean", "sequence_mean", "last_k"])
@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_fp32_matches_float64_reference(reduction: str, temperature: float) -> None:
    logits, mask = padded_batch()
    got = entropy_loss(logits, mask, temperature, reduction=reduction, last_k=3, chunk_tokens=4)
    want = reference_loss(logits, mask, temperature, reduction, last_k=3)
    assert got.dtype == torch.float32
    assert abs(got.item() - want) / want < 1e-6


@pytest.mark.parametrize("reduction", ["token_mean", "sequence_mean", "last_k"])
def test_bf16_logits_within_bf16_tolerance(reduction: str) -> None:
    logits, mask = padded_batch(seed=1, dtype=torch.bfloat16)
    got = entropy_loss(logits, mask, 0.5, reduction=reduction, last_k=2)
    want = reference_loss(logits.float(), mask, 0.5, reduction, last_k=2)  # same bf16 values, exact maths
    assert abs(got.item() - want) / want < 1e-5


def test_gradient_matches_float64_reference() -> None:
    logits, mask = padded_batch(seed=2)
    ours = logits.clone().requires_grad_(True)
    entropy_loss(ours, mask, 0.7, chunk_tokens=3).backward()
    ref = logits.double().clone().requires_grad_(True)
    scaled = ref / 0.7
    h = -(torch.softmax(scaled, -1) * torch.log_softmax(scaled, -1)).sum(-1)
    h[:, :-1][mask[:, 1:]].mean().backward()
    assert torch.allclose(ours.grad.double(), ref.grad, atol=1e-7, rtol=1e-4)


def test_first_generated_token_counts_and_the_position_after_the_last_does_not() -> None:
    logits = torch.zeros(1, 5, 4)
    logits[0, 1] = torch.tensor([10.0, 0.0, 0.0, 0.0])  # peaked: produced y_2, the first generated token
    logits[0, 3] = torch.tensor([50.0, 0.0, 0.0, 0.0])  # very peaked: produced y_4, the last one
    logits[0, 4] = torch.tensor([0.0, 0.0, 0.0, 0.0])  # uniform: after the last token, must not count
    mask = torch.tensor([[False, False, True, True, True]])
    uniform = torch.log(torch.tensor(4.0)).item()
    got = entropy_loss(logits, mask).item()
    first = reference_loss(logits, mask, 1.0, "token_mean")
    assert got == pytest.approx(first, rel=1e-6)
    # positions 1, 2, 3 count: one peaked, one uniform, one very peaked
    assert got < uniform * 0.5
    # The seed's positions (P .. P+n-1) would include the uniform tail and drop the first one.
    seed_style = position_entropy(logits, mask, 1.0).sum() / mask.sum()
    assert seed_style.item() != pytest.approx(got, rel=1e-3)


def test_left_padding_does_not_change_the_loss() -> None:
    gen = torch.Generator().manual_seed(3)
    core = torch.randn(1, 8, VOCAB, generator=gen)
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, 4:7] = True
    padded = torch.cat([torch.randn(1, 5, VOCAB, generator=gen), core], dim=1)  # five pads on the left
    padded_mask = torch.cat([torch.zeros(1, 5, dtype=torch.bool), mask], dim=1)
    assert entropy_loss(padded, padded_mask).item() == pytest.approx(entropy_loss(core, mask).item(), rel=1e-6)


def test_chunk_size_does_not_change_the_result() -> None:
    logits, mask = padded_batch(seed=4)
    values = {entropy_loss(logits, mask, chunk_tokens=c).item() for c in (1, 2, 5, 1024)}
    assert max(values) - min(values) < 1e-6


def test_reduction_terms_last_k_selects_the_tail_of_each_completion() -> None:
    active = torch.tensor([[1, 1, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.bool)
    numerators, denominator = reduction_terms(active, "last_k", last_k=2)
    assert numerators.tolist() == [[0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
    assert denominator.item() == 4


def test_sequence_mean_weighs_sequences_equally() -> None:
    active = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    numerators, denominator = reduction_terms(active, "sequence_mean")
    assert numerators[0].tolist() == [0.25] * 4 and numerators[1, 0].item() == 1.0
    assert denominator.item() == 2


def test_collate_masks_and_positions_by_hand() -> None:
    pad = 0
    rollouts = [
        Rollout(prompt_ids=[5, 6, 7], completion_ids=[8, 9, 2], finished=True),  # EOS = 2
        Rollout(prompt_ids=[5], completion_ids=[8], finished=False),
    ]
    batch = collate(rollouts, pad_id=pad)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9, 2], [0, 0, 5, 8, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0]]
    assert batch.position_ids[1, 2:4].tolist() == [0, 1]  # left padding does not shift positions
    assert batch.position_ids[0].tolist() == [0, 1, 2, 3, 4, 5]
    # logits kept at P-1 .. P+N-2 = 2 .. 4: the distributions that produced tokens 3 .. 5
    assert batch.logits_to_keep.tolist() == [2, 3, 4]
    assert batch.completion_mask.tolist() == [[True, True, True], [True, False, False]]


def test_trainer_path_equals_public_loss_on_a_real_model(tiny_model_dir) -> None:
    """logits_to_keep + position_entropy (the trainer) == entropy_loss over full logits (the public API)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    rollouts = [
        Rollout(prompt_ids=[10, 11, 12, 13], completion_ids=[20, 21, 22, 23, 24], finished=False),
        Rollout(prompt_ids=[10, 11], completion_ids=[30, 31], finished=True),
    ]
    batch = collate(rollouts, pad_id=0)
    kwargs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
    kept = model(**kwargs, logits_to_keep=batch.logits_to_keep).logits
    trainer_loss = (position_entropy(kept, batch.completion_mask, 0.5) * batch.completion_mask).sum()
    trainer_loss = trainer_loss / batch.completion_mask.sum()
    full = model(**kwargs).logits
    prompt_width = batch.input_ids.shape[1] - batch.completion_mask.shape[1]
    token_mask = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    token_mask[:, prompt_width:] = batch.completion_mask
    assert trainer_loss.item() == pytest.approx(entropy_loss(full, token_mask, 0.5).item(), rel=1e-6)
