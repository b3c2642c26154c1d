"""The embedded tiny model: offline, vLLM-compatible shapes, a tokenizer whose ids survive reloading."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from emtune.model.tiny import IM_END, build_tokenizer, write_tiny_model


def test_written_model_has_vllm_cpu_compatible_shapes(tmp_path: Path) -> None:
    out = write_tiny_model(tmp_path / "tiny")
    config = AutoConfig.from_pretrained(out)
    assert config.model_type == "qwen2"
    assert config.hidden_size >= 128
    assert config.hidden_size // config.num_attention_heads >= 32
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left


def test_tokenizer_ids_survive_reload_through_autotokenizer(tiny_model_dir: Path) -> None:
    reloaded = AutoTokenizer.from_pretrained(tiny_model_dir)
    original = build_tokenizer()
    text = "Find the sum of all $\\frac{1}{2}$ values: 12345 + 67, café  \n\n ok?"
    assert reloaded(text).input_ids == original(text).input_ids
    assert reloaded.decode(reloaded(text).input_ids) == text
    assert reloaded.eos_token == IM_END and reloaded.pad_token_id != reloaded.eos_token_id


def test_chat_template_renders_a_generation_prompt(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n") and "1+1?" in text


def test_same_seed_same_weights(tmp_path: Path) -> None:
    a = write_tiny_model(tmp_path / "a", seed=3)
    b = write_tiny_model(tmp_path / "b", seed=3)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_random_shapes_build_offline_and_unknown_ones_are_named() -> None:
    import pytest

    from emtune.errors import ModelError
    from emtune.model.loading import load_model

    model = load_model("random:qwen2-small")
    assert model.config.vocab_size == 151936 and model.config.hidden_size == 256
    with pytest.raises(ModelError, match=r"unknown random model shape 'gpt-9'; allowed: qwen2\.5-math-1\.5b"):
        load_model("random:gpt-9")
