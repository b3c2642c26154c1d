"""vLLM backend: the offline engine, with tensor parallelism inside an engine and data-parallel replicas as
independent engine processes, each on its own GPUs, each generating a contiguous share of the prompts (vLLM's
in-process data parallelism is for MoE models only)."""

from __future__ import annotations

import logging
import multiprocessing
import os
from typing import Any

from emtune.errors import ConfigError
from emtune.evaluate.backends import Completion, GenerationParams
from emtune.evaluate.config import EvalConfig

log = logging.getLogger(__name__)


def _engine_args(model_path: str, cfg: EvalConfig, dtype: str, trust_remote_code: bool) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": model_path,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "seed": cfg.seed,
        "dtype": {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[dtype],
        "trust_remote_code": trust_remote_code,
        "enforce_eager": cfg.enforce_eager,
    }
    if cfg.max_model_len is not None:
        args["max_model_len"] = cfg.max_model_len
    return args


def _generate(engine: Any, prompts: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    sampling = SamplingParams(
        n=params.n,
        temperature=params.temperature,
        top_p=params.top_p if params.temperature > 0 else 1.0,
        max_tokens=params.max_new_tokens,
        seed=params.seed,
    )
    outputs = engine.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], sampling, use_tqdm=False)
    return [
        [Completion(list(o.token_ids), "length" if o.finish_reason == "length" else "stop") for o in out.outputs]
        for out in outputs
    ]


def _replica(job: tuple[dict[str, Any], str | None, list[list[int]], GenerationParams]) -> list[list[Completion]]:
    """One data-parallel replica, in a fresh process: pin its GPUs before vLLM is imported, then generate."""
    engine_args, devices, prompts, params = job
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    from vllm import LLM

    return _generate(LLM(**engine_args), prompts, params)


def _replica_devices(replicas: int, per_replica: int) -> list[str | None]:
    import torch

    if not torch.cuda.is_available():
        return [None] * replicas
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if len(devices) < replicas * per_replica:
        raise ConfigError(
            f"eval.data_parallel_size={replicas} x eval.tensor_parallel_size={per_replica} needs "
            f"{replicas * per_replica} GPUs; {len(devices)} visible"
        )
    return [",".join(devices[r * per_replica : (r + 1) * per_replica]) for r in range(replicas)]


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_path: str, cfg: EvalConfig, dtype: str, trust_remote_code: bool) -> None:
        self.engine_args = _engine_args(model_path, cfg, dtype, trust_remote_code)
        self.replicas = cfg.data_parallel_size
        self.engine: Any = None
        if self.replicas == 1:
            from vllm import LLM

            self.engine = LLM(**self.engine_args)
        else:
            self.devices = _replica_devices(self.replicas, cfg.tensor_parallel_size)

    def generate(self, prompts: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
        if self.engine is not None:
            return _generate(self.engine, prompts, params)
        share = -(-len(prompts) // self.replicas)
        jobs = [
            (self.engine_args, self.devices[r], prompts[r * share : (r + 1) * share], params)
            for r in range(self.replicas)
        ]
        # One process per replica (maxtasksperchild=1), so each engine sees only its own GPUs.
        with multiprocessing.get_context("spawn").Pool(self.replicas, maxtasksperchild=1) as pool:
            shares = pool.map(_replica, jobs, chunksize=1)
        return [completions for part in shares for completions in part]

    def close(self) -> None:
        if self.engine is not None:
            del self.engine
            self.engine = None
