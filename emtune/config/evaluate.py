"""Evaluation settings (`emtune eval`, `emtune grade`). Defaults follow the Qwen2.5-Math harness protocol the
seed reports with: the `qwen25-math-cot` prompt, greedy decoding, up to 3,072 new tokens, seed 0."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from emtune.config.base import Section
from emtune.config.data import PromptFormat


class SandboxConfig(Section):
    """Where model-written code (code benchmarks) runs: limits of each program's worker subprocess."""

    concurrency: int = Field(2, ge=1, le=64, description="Programs run at the same time.")
    timeout_s: float = Field(10.0, gt=0, le=600, description="Wall-clock seconds per program; then it is killed.")
    cpu_s: int = Field(10, ge=1, le=600, description="CPU seconds per process (RLIMIT_CPU).")
    memory_mb: int = Field(1024, ge=64, description="Address space per process in MiB (RLIMIT_AS).")
    file_size_mb: int = Field(16, ge=1, description="Largest file a program may write, in MiB (RLIMIT_FSIZE).")
    max_processes: int = Field(16, ge=1, le=4096, description="Processes a program may run (RLIMIT_NPROC).")
    python: str = Field(
        "python3",
        description="Interpreter programs run with: a name looked up in /usr/local/bin:/usr/bin:/bin, or a path "
        "(not the evaluator's environment, which the sandbox's uid may not be able to read).",
    )
    uid_base: int = Field(
        60100, ge=1000, le=2**31 - 64,
        description="Run as root, program slot i runs as uid uid_base+i (a uid no user or service has).",
    )  # fmt: skip
    require_network_isolation: bool = Field(
        False, description="Refuse to run code when the kernel gives no network namespace (instead of warning)."
    )


class EvalConfig(Section):
    benchmarks: list[str] = Field(
        default_factory=lambda: ["math500"], min_length=1, description="Benchmarks to evaluate on."
    )
    sources: dict[str, str] = Field(
        default_factory=dict,
        description="Per-benchmark source overrides: benchmark name -> local file, folder, s3:// or hf:// source.",
    )
    check_count: bool = Field(
        True, description="Refuse a benchmark whose item count differs from its spec's (another version of the set)."
    )
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N problems of each benchmark.")
    backend: Literal["auto", "vllm", "hf"] = Field(
        "auto", description="Generation backend; 'auto' picks vLLM when it can run here, else transformers."
    )
    prompt_format: PromptFormat = Field("qwen25-math-cot", description="How a problem becomes the model's prompt.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Dtype both backends load the model in, recorded in metrics.json; 'auto': the checkpoint's own "
        "(its config.json), float32 when it names none.",
    )
    n: int = Field(1, ge=1, le=1024, description="Completions sampled per problem (avg@n, pass@k).")
    temperature: float = Field(0.0, ge=0, le=10, description="Sampling temperature; 0 is greedy decoding.")
    greedy: bool = Field(
        False, description="Sampled mode: also decode each problem greedily and report its accuracy as 'greedy'."
    )
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold (sampled mode only).")
    max_new_tokens: int = Field(3072, ge=1, description="Longest completion generated, in tokens.")
    seed: int = Field(0, ge=0, description="Sampling seed.")
    pass_k: list[int] = Field(
        default_factory=lambda: [1, 4, 8, 16, 32, 64],
        min_length=1,
        description="k values of pass@k; those larger than n are skipped.",
    )
    batch_size: int = Field(64, ge=1, description="Sequences one transformers generate call decodes at once.")
    hf_static_cache: Literal["auto", "on", "off"] = Field(
        "auto", description="transformers backend: static KV cache with compiled decoding; 'auto' uses it on CUDA."
    )
    grading_timeout_s: float = Field(10.0, gt=0, le=600, description="Per-item grading time limit; over it is wrong.")
    grading_workers: int = Field(0, ge=0, le=64, description="Grading processes; 0 = one per CPU core (at most 8).")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Code benchmarks' sandbox.")
    benchmark_sampling: bool = Field(
        True,
        description="Use each benchmark spec's own decoding settings (code: temperature 0.1, 4,096 tokens; logic: "
        "greedy, 3,072 tokens) over eval.temperature and eval.max_new_tokens.",
    )
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="vLLM: GPUs one engine shards the model over.")
    data_parallel_size: int = Field(1, ge=1, le=64, description="vLLM: independent engines splitting the problems.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="vLLM: fraction of GPU memory it may use.")
    max_model_len: int | None = Field(None, ge=16, description="vLLM: context length; unset: the model's own.")
    enforce_eager: bool = Field(False, description="vLLM: skip CUDA-graph capture (faster start, slower decode).")

    @field_validator("pass_k")
    @classmethod
    def _positive_ks(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError(f"pass@k needs k >= 1, got {ks}")
        return sorted(set(ks))

    @model_validator(mode="after")
    def _sampling_needs_temperature(self) -> EvalConfig:
        if self.n > 1 and self.temperature == 0:
            raise ValueError(f"n={self.n} samples per problem need temperature > 0 (greedy samples are identical)")
        return self
