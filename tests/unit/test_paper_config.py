"""configs/paper.yaml samples as the research code's rollout does. Its train.py calls

    model.generate(**enc, max_new_tokens=512, do_sample=True, top_p=0.95, temperature=temperature,
                   synced_gpus=True, repetition_penalty=1.15, pad_token_id=151643)

with temperature 0.5 (its README's command line). Every knob it does not pass comes from transformers'
GenerationConfig defaults, so those are read from transformers itself, not written down here."""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig

from emtune.config import load_config

PAPER = Path(__file__).resolve().parents[2] / "configs" / "paper.yaml"
SEED_GENERATE_CALL = {
    "max_new_tokens": 512,
    "do_sample": True,
    "top_p": 0.95,
    "temperature": 0.5,
    "repetition_penalty": 1.15,
}


def test_paper_yaml_resolves_to_the_seed_generate_call() -> None:
    # What generate() runs with: the call, then transformers' global defaults for every field still unset.
    seed = GenerationConfig(**SEED_GENERATE_CALL)
    seed.update(**GenerationConfig._get_default_generation_params(), defaults_only=True)
    train = load_config(PAPER).train
    resolved = {
        "temperature": train.temperature,
        "top_p": train.top_p,
        "top_k": train.top_k,
        "repetition_penalty": train.repetition_penalty,
        "max_new_tokens": train.max_new_tokens,
    }
    assert resolved == {key: getattr(seed, key) for key in resolved}
    assert seed.top_k == 50 and seed.do_sample  # the default the seed inherits; emtune's own default is off (0)
    assert load_config(None).train.top_k == 0


def test_paper_yaml_states_the_gpu_count_its_step_count_assumes() -> None:
    text = PAPER.read_text()
    train = load_config(PAPER).train
    assert "GPUs: 8" in text and "--nproc_per_node 8" in text
    seed_micro_steps, gpus = 50, 8
    assert train.max_steps == int(seed_micro_steps * train.micro_batch_size * gpus / train.rollouts_per_step)
