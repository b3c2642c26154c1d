"""The vLLM engine's pure parts (no vLLM needed) and the log-prob guard; the engine itself runs in
tests/integration/test_train_vllm.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emtune.config import load_config
from emtune.errors import ConfigError, TrainingError
from emtune.train.batching import collate
from emtune.train.logprob_guard import check_logprob_gap, sampled_logprobs
from emtune.train.rollout import Rollout, RolloutRequest, SamplingParams
from emtune.train.rollout_vllm import (
    VLLMRolloutEngine,
    hf_parameter_name,
    merged_adapters,
    rollout_seeds,
    sampling_kwargs,
    trainer_weights,
)


def test_sampling_follows_the_config_with_one_seed_per_rollout() -> None:
    params = SamplingParams(temperature=0.5, top_p=0.95, top_k=20, repetition_penalty=1.15, max_new_tokens=512)
    kwargs = sampling_kwargs(params, seed=2**64 + 3, eos_ids={7, 2})
    assert kwargs["temperature"] == 0.5 and kwargs["top_p"] == 0.95 and kwargs["top_k"] == 20
    assert kwargs["repetition_penalty"] == 1.15 and kwargs["max_tokens"] == 512
    assert kwargs["stop_token_ids"] == [2, 7]
    assert kwargs["logprobs"] == 0 and kwargs["n"] == 1
    assert 0 <= kwargs["seed"] < 2**63
    request = RolloutRequest([[1, 2]] * 4, seed=2**63 - 2)
    seeds = rollout_seeds(request)
    assert len(set(seeds)) == 4 and all(0 <= s < 2**63 for s in seeds)
    assert rollout_seeds(request) == seeds  # a resumed run re-samples with the same seeds


def test_parameter_names_map_to_checkpoint_names() -> None:
    assert hf_parameter_name("model.layers.0.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"
    assert (
        hf_parameter_name("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight")
        == "model.layers.0.self_attn.q_proj.weight"
    )
    assert hf_parameter_name("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight") is None


def test_trainer_weights_cover_the_model_in_buckets_without_copies(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    expected = dict(model.named_parameters())
    produced = list(trainer_weights(model, bucket_bytes=64 * 1024))
    assert [name for name, _ in produced] == list(expected)
    for name, tensor in produced:
        assert tensor.data_ptr() == expected[name].data_ptr()  # the live weights, not a copy


def test_lora_weights_are_handed_over_merged_and_unmerged_afterwards(tiny_model_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], init_lora_weights=False))
    q_before = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.detach().clone()
    with merged_adapters(model):
        weights = {name: tensor.clone() for name, tensor in trainer_weights(model, bucket_bytes=1 << 30)}
    assert not any("lora_" in name for name in weights)
    q_merged = weights["model.layers.0.self_attn.q_proj.weight"]
    assert not torch.allclose(q_merged, q_before)  # the adapter is in the weights vLLM gets
    # unmerged again (merge then unmerge rounds in float32, as peft does)
    assert torch.allclose(
        model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight, q_before, atol=1e-6
    )


def test_sampled_logprobs_match_log_softmax_in_any_chunking() -> None:
    logits = torch.randn(2, 5, 11, dtype=torch.float64)
    tokens = torch.randint(0, 11, (2, 5))
    reference = torch.log_softmax(logits, -1).gather(2, tokens[..., None]).squeeze(-1)
    for chunk in (1, 3, 1024):
        assert torch.allclose(sampled_logprobs(logits.float(), tokens, chunk).double(), reference, atol=1e-5)


def test_collate_aligns_engine_logprobs_with_the_completion() -> None:
    rollouts = [Rollout([1, 2, 3], [4, 5], True, [-0.5, -1.5]), Rollout([1], [6, 7, 8], False, [-1.0, -2.0, -3.0])]
    batch = collate(rollouts, pad_id=0)
    assert batch.rollout_logprobs is not None
    assert batch.rollout_logprobs.tolist() == [[-0.5, -1.5, 0.0], [-1.0, -2.0, -3.0]]
    assert batch.input_ids[:, -3:].tolist() == [[4, 5, 0], [6, 7, 8]]
    assert collate([Rollout([1], [2], True)], pad_id=0).rollout_logprobs is None


def test_guard_fails_only_above_the_threshold() -> None:
    check_logprob_gap({"step": 3, "logprob_gap": None}, 0.1)  # an engine without log-probs: nothing to check
    check_logprob_gap({"step": 3, "logprob_gap": 0.09}, 0.1)
    check_logprob_gap({"step": 3, "logprob_gap": 5.0}, 0.0)  # 0 disables it
    with pytest.raises(TrainingError, match=r"0\.25 nats per token at step 3 .*train\.max_logprob_gap allows 0\.1"):
        check_logprob_gap({"step": 3, "logprob_gap": 0.25, "logprob_gap_max": 1.0}, 0.1)
    with pytest.raises(TrainingError):
        check_logprob_gap({"step": 3, "logprob_gap": float("nan")}, 0.1)


def test_engine_choice_and_its_settings_are_validated() -> None:
    assert load_config(None, {"train.rollout_engine": "vllm"}).train.rollout_engine == "vllm"
    with pytest.raises(ConfigError, match="rollout_engine"):
        load_config(None, {"train.rollout_engine": "sglang"})
    with pytest.raises(ConfigError, match="vllm_sleep needs rollout_engine 'vllm'"):
        load_config(None, {"train.vllm_sleep": True})


def test_vllm_engine_without_vllm_names_the_alternative() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed here; the engine itself is tested in tests/integration")
    with pytest.raises(ConfigError, match=r"needs vLLM installed.*allowed here: 'hf'"):
        VLLMRolloutEngine(
            "unused", eos_ids=[2], dtype="float32", max_model_len=64, max_num_seqs=4, gpu_memory_utilization=0.3,
            sleep=False, sync_bucket_mb=1, seed=0, world_size=1,
        )  # fmt: skip
