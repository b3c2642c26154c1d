"""The embedded default model: a randomly initialised Qwen2-architecture LM with a BPE tokenizer.

Everything is made offline and deterministically from a seed, so the demo and the tests never touch a
model hub. The shapes are the smallest vLLM's CPU backend accepts (head_dim 32, hidden 128).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from emtune.fsutil import atomic_dir, check_output

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]

# The split rule Qwen2's tokenizer applies on load; training with the same rule keeps ids stable on reload.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

_WORDS = (
    "find the sum product value number of all real integer solutions equation triangle circle area "
    "radius side length angle point line prime divisor remainder when divided by let be such that "
    "what is compute how many ways probability answer step reason final put your within boxed "
    "please therefore so we have thus then if and only for each positive negative square root"
).split()
_LATEX = [r"\frac{", r"\sqrt{", r"\boxed{", r"\cdot", r"\pi", r"\le", r"\ge", "^2", "_{n}", "$", "}", "(", ")", "="]


def _corpus(seed: int, lines: int = 4000) -> Iterator[str]:
    """Maths-flavoured synthetic text, enough for byte-level BPE to learn a small vocabulary."""
    rng = random.Random(seed)
    for _ in range(lines):
        parts = []
        for _ in range(rng.randint(6, 24)):
            roll = rng.random()
            if roll < 0.6:
                parts.append(rng.choice(_WORDS))
            elif roll < 0.8:
                parts.append(str(rng.randint(0, 999)))
            else:
                parts.append(rng.choice(_LATEX))
        yield " ".join(parts) + rng.choice([".", "?", "\n"])


def build_tokenizer(
    vocab_size: int = 1024, seed: int = 0, corpus: Iterable[str] | None = None
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `corpus` (default: synthetic maths-flavoured text from `seed`)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed) if corpus is None else corpus, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=PAD_TOKEN, model_max_length=4096
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_model(vocab_size: int, pad_id: int, eos_id: int, seed: int = 0) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    model.generation_config.bos_token_id = None
    return model


def write_tiny_model(out_dir: Path, seed: int = 0, vocab_size: int = 1024, *, overwrite: bool = False) -> Path:
    """Write the tiny model and tokenizer to `out_dir` (atomically) and return it."""
    check_output(out_dir, overwrite=overwrite)
    tokenizer = build_tokenizer(vocab_size=vocab_size, seed=seed)
    model = build_model(
        vocab_size=len(tokenizer),
        pad_id=tokenizer.pad_token_id,
        eos_id=tokenizer.eos_token_id,
        seed=seed,
    )
    with atomic_dir(Path(out_dir), "tiny-model", overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
