"""train.loss_reduction: the gradient of one update equals a reference computed apart from the trainer, straight
from `emtune.losses.entropy_loss` on the full logits: `global` is one token mean over the step's rollouts,
`micro_batch` (the research code's) the mean of each micro-batch's token mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from emtune.config import load_config
from emtune.losses import entropy_loss
from emtune.train.batching import collate
from emtune.train.rollout import Rollout
from emtune.train.trainer import Trainer

SETTINGS = {
    "model.path": "builtin:tiny", "train.prompts": "builtin:demo", "train.rollouts_per_step": 8,
    "train.rollout_batch_size": 8, "train.micro_batch_size": 2, "train.max_new_tokens": 24, "train.temperature": 1.0,
    "train.top_p": 1.0, "train.loss_temperature": 0.7, "train.grad_clip": 0.0, "train.max_steps": 1,
}  # fmt: skip


def _step_gradient(trainer: Trainer) -> tuple[list[Rollout], list[torch.Tensor]]:
    """The rollouts of step 1 and the gradient the trainer applies to them, captured before its update."""
    captured: list[torch.Tensor] = []
    update = trainer._optimizer_step

    def capture() -> Any:
        if trainer.accelerator.sync_gradients:
            captured.extend(p.grad.detach().clone() for p in trainer.model.parameters())
        return update()

    sampled = trainer.sample(1)
    # Completions of unequal lengths (3 to 24 tokens), in micro-batches of unequal token counts: the sampled ones
    # cut short, so the two reductions weigh tokens differently.
    rollouts = [Rollout(r.prompt_ids, r.completion_ids[: 3 + 3 * i], False) for i, r in enumerate(sampled)]
    trainer._optimizer_step = capture  # type: ignore[method-assign]
    trainer.sample = lambda step: rollouts  # type: ignore[method-assign]
    trainer.train_step(1)
    return rollouts, captured


def _micro_batch_means(model: Any, rollouts: list[Rollout], size: int, pad_id: int, temperature: float) -> list:
    losses = []
    for start in range(0, len(rollouts), size):
        batch = collate(rollouts[start : start + size], pad_id)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids).logits  # fmt: skip
        prompt_width = batch.input_ids.shape[1] - batch.completion_mask.shape[1]
        mask = torch.zeros_like(batch.input_ids, dtype=torch.bool)
        mask[:, prompt_width:] = batch.completion_mask
        losses.append((entropy_loss(logits, mask, temperature), int(batch.completion_mask.sum())))
    return losses


@pytest.mark.parametrize("reduction", ["global", "micro_batch"])
def test_the_update_equals_the_reference_reduction(reduction: str, tmp_path: Path) -> None:
    cfg = load_config(None, {**SETTINGS, "run.out_dir": str(tmp_path), "train.loss_reduction": reduction})
    trainer = Trainer(cfg)
    reference_model = trainer.accelerator.unwrap_model(trainer.model)
    state = {k: v.clone() for k, v in reference_model.state_dict().items()}
    rollouts, gradient = _step_gradient(trainer)

    reference_model.load_state_dict(state)  # the weights the trainer's gradient was taken at
    reference_model.zero_grad(set_to_none=True)
    means = _micro_batch_means(reference_model, rollouts, 2, trainer.tokenizer.pad_token_id, 0.7)
    if reduction == "micro_batch":
        loss = sum(mean for mean, _ in means) / len(means)
    else:
        loss = sum(mean * tokens for mean, tokens in means) / sum(tokens for _, tokens in means)
    loss.backward()
    expected = [p.grad for p in reference_model.parameters()]
    for got, want in zip(gradient, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_the_two_reductions_give_different_updates_on_unequal_lengths(tmp_path: Path) -> None:
    gradients = []
    for reduction in ("global", "micro_batch"):
        cfg = load_config(
            None, {**SETTINGS, "run.out_dir": str(tmp_path / reduction), "train.loss_reduction": reduction}
        )
        gradients.append(_step_gradient(Trainer(cfg))[1])
    difference = sum(float((a - b).norm() ** 2) for a, b in zip(*gradients, strict=True)) ** 0.5
    size = sum(float(a.norm() ** 2) for a in gradients[0]) ** 0.5
    assert difference > 0.01 * size  # same seed, same rollouts: only the weighting differs
