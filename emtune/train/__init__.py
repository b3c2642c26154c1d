"""The entropy-minimisation trainer: rollouts, loss, optimizer step, checkpoints."""
