"""The trainer on the embedded tiny model: entropy falls, resume is exact, bad input fails cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from emtune.config import load_config
from emtune.errors import ConfigError, DataError, ModelError, StoreError, TrainingError
from emtune.fsutil import read_jsonl
from emtune.train import checkpoint
from emtune.train.trainer import Trainer, run

TINY = {
    "model.path": "builtin:tiny",
    "train.prompts": "builtin:demo",
    "train.rollouts_per_step": 8,
    "train.rollout_batch_size": 8,
    "train.micro_batch_size": 4,
    "train.max_new_tokens": 16,
    "train.temperature": 1.0,
    "train.top_p": 1.0,
    "train.loss_temperature": 1.0,
    "train.learning_rate": 3e-3,
    "train.weight_decay": 0.0,
}


def tiny_config(out: Path, **overrides: Any):
    return load_config(None, {**TINY, "run.out_dir": str(out), **overrides})


def test_twenty_steps_cut_the_entropy_of_fresh_samples_by_a_third(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path / "run", **{"train.max_steps": 20, "train.rollouts_per_step": 16, "train.rollout_batch_size": 16}
    )
    result = run(cfg)
    entropies = [m["entropy"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert len(entropies) == 20
    assert entropies[-1] <= 0.7 * entropies[0], entropies
    assert result.steps == [20] and checkpoint.complete_steps(tmp_path / "run") == [20]


def test_step_folder_holds_a_loadable_model_and_the_marker(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run(tiny_config(tmp_path / "run", **{"train.max_steps": 2, "train.save_every": 1, "train.keep_last": 1}))
    assert checkpoint.complete_steps(tmp_path / "run") == [2]  # keep_last removed step 1
    folder = tmp_path / "run" / "step-2"
    marker = json.loads((folder / "checkpoint.json").read_text())
    assert marker["step"] == 2 and "entropy" in marker["metrics"]
    AutoModelForCausalLM.from_pretrained(folder)
    AutoTokenizer.from_pretrained(folder)
    assert checkpoint.read_state(folder)["step"] == 2
    assert not list((tmp_path / "run").glob(".step-*"))


def test_same_seed_same_run(tmp_path: Path) -> None:
    first = run(tiny_config(tmp_path / "a", **{"train.max_steps": 2}))
    second = run(tiny_config(tmp_path / "b", **{"train.max_steps": 2}))
    assert [m["loss"] for m in first.metrics] == [m["loss"] for m in second.metrics]


def test_micro_batching_does_not_change_the_update(tmp_path: Path) -> None:
    """max_steps counts optimizer updates; micro_batch_size only splits the work."""
    whole = run(tiny_config(tmp_path / "a", **{"train.max_steps": 2, "train.micro_batch_size": 8}))
    split = run(tiny_config(tmp_path / "b", **{"train.max_steps": 2, "train.micro_batch_size": 2}))
    assert split.metrics[1]["loss"] == pytest.approx(whole.metrics[1]["loss"], rel=1e-5)


def _launch(config_path: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "emtune", "train", "--config", str(config_path), "--out", str(out), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_killed_run_resumes_with_the_same_losses(tmp_path: Path) -> None:
    settings = {**TINY, "train.max_steps": 5, "train.save_every": 1, "train.max_new_tokens": 48}
    config_path = tmp_path / "run.yaml"
    nested: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    import yaml

    config_path.write_text(yaml.safe_dump(nested))

    reference = run(load_config(config_path, {"run.out_dir": str(tmp_path / "ref")}))
    want = {m["step"]: m["loss"] for m in reference.metrics}

    out = tmp_path / "killed"
    proc = _launch(config_path, out)
    deadline = time.monotonic() + 240
    while not (out / "step-3" / "checkpoint.json").exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 in checkpoint.complete_steps(out)
    assert 5 not in checkpoint.complete_steps(out)

    resumed = _launch(config_path, out, "--resume")
    _, stderr = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, stderr
    got = {m["step"]: m["loss"] for m in read_jsonl(out / "metrics.jsonl")}
    assert sorted(got) == [1, 2, 3, 4, 5]
    for step in (4, 5):
        assert got[step] == pytest.approx(want[step], rel=1e-6, abs=1e-7)


def test_resume_ignores_a_step_folder_without_its_marker(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(tiny_config(out, **{"train.max_steps": 2, "train.save_every": 1}))
    (out / "step-3").mkdir()
    (out / "step-3" / "config.json").write_text("{}")  # looks like a step, has no checkpoint.json
    trainer = Trainer(tiny_config(out, **{"train.max_steps": 3}), resume=True)
    assert trainer.start_step == 2


def test_refuses_to_overwrite_a_run_without_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(tiny_config(out, **{"train.max_steps": 1}))
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(tiny_config(out, **{"train.max_steps": 2}))


@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        ({"model.path": "/nonexistent/model"}, ModelError, "does not exist"),
        ({"train.prompts": "/nonexistent/prompts.parquet"}, DataError, "does not exist"),
        ({"train.rollouts_per_step": 6}, TrainingError, "not divisible by world_size 1 x train.micro_batch_size 4"),
        ({"train.max_prompt_tokens": 5}, DataError, "train.max_prompt_tokens allows at most 5"),
    ],
)
def test_bad_input_fails_before_training(tmp_path: Path, overrides: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        run(tiny_config(tmp_path / "run", **overrides))
    assert not checkpoint.complete_steps(tmp_path / "run")


def test_unreadable_and_empty_prompt_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="unreadable"):
        run(tiny_config(tmp_path / "a", **{"train.prompts": str(broken)}))
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"problem": pa.array([], pa.string())}), empty)
    with pytest.raises(DataError, match="holds no prompts"):
        run(tiny_config(tmp_path / "b", **{"train.prompts": str(empty)}))


def test_non_finite_loss_stops_without_a_complete_step(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        # Logits of ~1e36 sample fine at temperature 1 but overflow float32 at loss temperature 1e-3.
        model.model.norm.weight.fill_(1e37)
    broken = tmp_path / "nan-model"
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(broken)
    with pytest.raises(TrainingError, match="loss is not finite at step 1"):
        run(
            tiny_config(
                tmp_path / "run", **{"model.path": str(broken), "train.save_every": 1, "train.loss_temperature": 1e-3}
            )
        )
    assert not checkpoint.complete_steps(tmp_path / "run")


def test_wandb_offline_when_no_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run(tiny_config(tmp_path / "run", **{"train.max_steps": 1, "logging.wandb_project": "emtune-test"}))
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_gradient_checkpointing_gives_the_same_step(tmp_path: Path) -> None:
    plain = run(tiny_config(tmp_path / "a", **{"train.max_steps": 2}))
    checkpointed = run(tiny_config(tmp_path / "b", **{"train.max_steps": 2, "train.gradient_checkpointing": True}))
    assert checkpointed.metrics[1]["loss"] == pytest.approx(plain.metrics[1]["loss"], rel=1e-5)


def test_bf16_mixed_precision_trains(tmp_path: Path) -> None:
    result = run(tiny_config(tmp_path / "run", **{"train.max_steps": 3, "train.precision": "bf16"}))
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in result.metrics)
    assert result.metrics[-1]["entropy"] < result.metrics[0]["entropy"]


def test_lora_trains_adapters_and_exports_a_merged_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    import copy

    from transformers import AutoModelForCausalLM

    trainer = Trainer(tiny_config(tmp_path / "run", **{"train.max_steps": 2, "train.lora.enabled": True,
                                                       "train.lora.r": 4, "train.learning_rate": 1e-2}))  # fmt: skip
    trainer.train()
    live = trainer.accelerator.unwrap_model(trainer.model)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "step-2")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    q_base = base.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(q_merged, q_base)
    assert torch.equal(merged.model.embed_tokens.weight, base.model.embed_tokens.weight)  # not a LoRA target
    # The export equals peft's own merge, and the model being trained keeps its adapters unmerged.
    reference = copy.deepcopy(live).merge_and_unload().state_dict()
    exported = merged.state_dict()
    assert set(exported) == set(reference)
    assert all(torch.allclose(exported[key], reference[key], atol=1e-6) for key in reference)
    assert any("lora_A" in name for name, _ in live.named_parameters())
    assert torch.equal(live.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight, q_base)


def test_state_is_kept_for_the_newest_step_and_stale_partials_are_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(tiny_config(out, **{"train.max_steps": 3, "train.save_every": 1}))
    assert checkpoint.complete_steps(out) == [1, 2, 3]  # no store: keep_last keeps every step
    assert [checkpoint.has_state(out / f"step-{step}") for step in (1, 2, 3)] == [False, False, True]
    (out / ".step-4.partial" / "trainer_state").mkdir(parents=True)  # as a killed save leaves it

    trainer = Trainer(tiny_config(out, **{"train.max_steps": 4}), resume=True)
    assert trainer.start_step == 3 and not (out / ".step-4.partial").exists()

    with pytest.raises(ConfigError) as changed:  # a new learning rate would be silently lost in the restored state
        Trainer(tiny_config(out, **{"train.max_steps": 4, "train.learning_rate": 1e-3, "train.top_p": 0.9}),
                resume=True)  # fmt: skip
    message = str(changed.value)
    assert "train.learning_rate 0.003 -> 0.001" in message and "train.top_p 1.0 -> 0.9" in message
    assert f"--model {out / 'step-3'} --out NEW_FOLDER" in message and "\n" not in message


def test_an_unwritable_store_fails_before_the_first_step(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match=r"cannot write .* in .*a-file/store"):
        run(tiny_config(tmp_path / "run", **{"store.uri": str(blocker / "store")}))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_cosine_schedule_with_warmup(tmp_path: Path) -> None:
    result = run(tiny_config(tmp_path / "run", **{"train.max_steps": 4, "train.lr_schedule": "cosine",
                                                  "train.warmup_steps": 2, "train.min_lr_ratio": 0.1}))  # fmt: skip
    lrs = [m["lr"] for m in result.metrics]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(1.5e-3) and lrs[2] == pytest.approx(3e-3)
    assert lrs[3] < lrs[2]


def test_bench_em_step_reports_both_sides(tmp_path: Path) -> None:
    from emtune.bench.em_step import run as bench

    result = bench(samples=4, new_tokens=4, micro=2, repeats=2)
    # Both sample the same way and stop at EOS: neither side is forced to the full length.
    assert 0 < result["baseline"].generated_tokens <= 16
    assert 0 < result["emtune"].generated_tokens <= 16
    assert result["speedup"] > 0 and result["repeats"] == 2


def test_bench_seed_style_counts_tokens_up_to_eos() -> None:
    from emtune.bench.em_step import _up_to_eos

    completions = torch.tensor([[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0]])
    assert _up_to_eos(completions, {2}).sum(dim=1).tolist() == [2, 4, 1]


def test_bench_baseline_can_be_timed_on_a_subset_and_scaled(tmp_path: Path) -> None:
    from emtune.bench.em_step import run as bench

    result = bench(model="random:qwen2-small", samples=8, new_tokens=3, micro=2, baseline_micro_batches=1, repeats=1)
    assert "1 of 4 micro-batches timed and scaled" in result["baseline"].name
    assert result["baseline"].generated_tokens in range(4, 25, 4)  # at most 2 x 3 tokens measured, scaled by 4


def test_multi_shot_steps_walk_every_prompt_once_per_epoch(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    prompts = tmp_path / "prompts.parquet"
    pq.write_table(pa.table({"problem": [f"What is {i} plus {i}?" for i in range(6)]}), prompts)
    trainer = Trainer(tiny_config(tmp_path / "run", **{"train.prompts": str(prompts), "train.samples_per_prompt": 2,
                                                       "train.rollouts_per_step": 4}))  # fmt: skip
    epoch = [tuple(p) for step in (1, 2, 3) for p in trainer.prompts_for_step(step)[::2]]  # 2 prompts per step
    assert sorted(epoch) == sorted(tuple(p) for p in trainer.prompt_ids)  # each prompt once in the first epoch
    assert trainer.prompts_for_step(1) == trainer.prompts_for_step(1)  # deterministic
    first = trainer.prompts_for_step(1)
    assert first[0] == first[1] and first[2] == first[3]  # samples_per_prompt copies side by side
