"""What both generation backends are given: the same sampling parameters and dtype, from the eval config only;
and the vLLM worker process's plumbing (its failures reach the user as one line naming its log file)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from emtune.config import load_config
from emtune.errors import ModelError
from emtune.evaluate.backends import GenerationParams, resolve_dtype
from emtune.evaluate.backends.vllm import VLLMBackend, engine_args, replica_seed, sampling_args


@pytest.mark.parametrize(
    ("saved", "requested", "expected"),
    [
        ({"dtype": "bfloat16"}, "auto", "bfloat16"),
        ({"torch_dtype": "float16"}, "auto", "float16"),
        ({}, "auto", "float32"),
        ({"dtype": "bfloat16"}, "float32", "float32"),
    ],
)
def test_eval_dtype_auto_is_the_checkpoint_own(saved: dict, requested: str, expected: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", **saved}))
    assert resolve_dtype(requested, str(tmp_path)) == expected


def test_vllm_gets_every_sampling_knob_and_never_the_checkpoint_defaults() -> None:
    cfg = load_config(None, {"eval.n": 4, "eval.temperature": 0.6, "eval.top_p": 0.9, "eval.seed": 3}).eval
    params = GenerationParams.from_config(cfg)
    # No per-request seed (vLLM would give sample k the seed `seed + k` on every problem); the worker reseeds.
    assert sampling_args(params, [2, 5]) == {
        "n": 4,
        "temperature": 0.6,
        "top_p": 0.9,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "max_tokens": cfg.max_new_tokens,
        "stop_token_ids": [2, 5],
    }
    greedy = GenerationParams.from_config(load_config(None, {"eval.top_p": 0.5}).eval)
    assert sampling_args(greedy, [])["top_p"] == 1.0 and sampling_args(greedy, [])["temperature"] == 0
    assert replica_seed(3, 0) == 3 and len({replica_seed(s, r) for s in range(4) for r in range(4)}) == 16
    args = engine_args("/m", cfg, "bfloat16", False)
    assert args["generation_config"] == "vllm" and args["dtype"] == "bfloat16"


def test_a_failing_vllm_worker_is_one_line_naming_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The dev venv's python has no vLLM: the worker starts, fails to import it, and says so.
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed in this environment")
    monkeypatch.setenv("EMTUNE_VLLM_PYTHON", sys.executable)
    log_file = tmp_path / "logs" / "step-0.log"
    with pytest.raises(
        ModelError, match=r"vLLM failed: ModuleNotFoundError: No module named 'vllm' \(its log: .*step-0\.log\)"
    ):
        VLLMBackend("/no/model", load_config(None).eval, "float32", False, log_file, [])
    assert "Traceback" in log_file.read_text()


def test_eval_dtype_auto_of_a_hub_model_reads_its_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # No hub here: the look-up fails as one line naming the model (on a cluster it reads the model's config.json).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"cannot read the config of 'org/no-such-model'"):
        resolve_dtype("auto", "org/no-such-model")
    assert resolve_dtype("bfloat16", "org/no-such-model") == "bfloat16"
