"""Device-machine checks (CUDA only): the hf engine's static-cache decode is compiled, once, survives weight
updates, and computes what eager does.

Each assertion fails on the failure it names: no graph compiled (decoding ran eagerly), new graphs after
every update (a recompile per step), or compiled logits that differ from an eager forward.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emtune.model.generate import PROMPT_WIDTH_BUCKET, left_pad

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.fail("tests/gpu needs a CUDA device: run them on the device machine (make test-gpu)")


def compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def test_static_cache_decoding_is_compiled_once_survives_updates_and_matches_eager(tmp_path: Path) -> None:
    from emtune.config import load_config
    from emtune.train.trainer import Trainer

    batch = 16
    cfg = load_config(
        None,
        {
            "model.path": "builtin:tiny",
            "train.prompts": "builtin:demo",
            "run.out_dir": str(tmp_path / "run"),
            "train.max_steps": 3,
            "train.rollouts_per_step": batch,
            "train.rollout_batch_size": batch,
            "train.micro_batch_size": 8,
            "train.max_new_tokens": 32,
            "train.learning_rate": 1e-3,
            "train.static_cache": "auto",
            "train.temperature": 1.0,
            "train.top_p": 1.0,
        },
    )
    trainer = Trainer(cfg)
    assert trainer.engine.static_cache
    torch._dynamo.reset()
    before = compiled_graphs()
    first = trainer.train_step(1)
    after_first = compiled_graphs()
    assert after_first > before, "static-cache decoding was not compiled"
    trainer.train_step(2)
    third = trainer.train_step(3)
    assert compiled_graphs() == after_first, "weight updates made the decode graph recompile"
    assert third["entropy"] < first["entropy"]  # the updates reached the weights the graph decodes with

    # The compiled decode (greedy, the same batch shape, so the same graph) against one eager forward.
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    ids, mask = left_pad(trainer.prompts_for_step(1)[:batch], trainer.tokenizer.pad_token_id, PROMPT_WIDTH_BUCKET)
    ids, mask = ids.cuda(), mask.cuda()
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=32,
            min_new_tokens=32,
            cache_implementation="static",
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=trainer.tokenizer.pad_token_id,
        )
        assert compiled_graphs() == after_first, "a greedy call of the same shape recompiled"
        full_mask = torch.cat([mask, torch.ones_like(out.sequences[:, ids.shape[1] :])], dim=1)
        eager = model(
            input_ids=out.sequences,
            attention_mask=full_mask,
            position_ids=(full_mask.cumsum(1) - 1).clamp(min=0),
        ).logits[:, ids.shape[1] - 1 : -1]
    compiled = torch.stack(out.logits, dim=1)
    assert torch.allclose(compiled.float(), eager.float(), atol=2e-3, rtol=2e-3), (compiled - eager).abs().max()
