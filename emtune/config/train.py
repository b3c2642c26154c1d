"""Training hyper-parameters: each defined once, with its default, range and help text."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from emtune.config.base import Section


class LoraConfig(Section):
    enabled: bool = Field(False, description="Train LoRA adapters instead of all weights (peft).")
    r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
        description="Module names that get adapters.",
    )


class TrainConfig(Section):
    prompts: str | None = Field(
        None,
        description="Prompt set: prep's output folder or prompts.parquet, a parquet/jsonl file, 'builtin:demo' or "
        "'builtin:demo-add' (builtin:tiny-math's one-shot problem); unset: data.output.",
    )
    max_steps: int = Field(10, ge=1, description="Optimizer updates to run (not micro-batches).")
    rollouts_per_step: int = Field(64, ge=1, description="Completions sampled per step: the effective batch.")
    samples_per_prompt: int | None = Field(
        None, ge=1, description="Completions per prompt; unset: all rollouts of a step come from one prompt."
    )
    rollout_batch_size: int = Field(64, ge=1, description="Most sequences one generate call decodes at once.")
    micro_batch_size: int = Field(2, ge=1, description="Sequences per loss forward/backward (gradient accumulation).")
    max_prompt_tokens: int = Field(1024, ge=1, description="Longest prompt accepted, in tokens.")
    max_new_tokens: int = Field(512, ge=1, description="Longest completion sampled, in tokens.")
    temperature: float = Field(0.5, gt=0, le=10, description="Sampling temperature of the rollouts.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling threshold of the rollouts.")
    top_k: int = Field(0, ge=0, description="Top-k filter of the rollouts; 0 disables it.")
    repetition_penalty: float = Field(1.0, gt=0, description="Repetition penalty of the rollouts (1.0: none).")
    rollout_engine: Literal["hf", "vllm"] = Field(
        "hf",
        description="Engine that samples rollouts: 'hf' (transformers generate on the training model) or 'vllm' "
        "(a vLLM engine in the training process, sharing its GPU, weights pushed in after every update).",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="vllm engine: fraction of the GPU's memory it may take (the trainer shares it)."
    )
    vllm_sleep: bool = Field(
        False, description="vllm engine: sleep (level 1: weights to CPU, KV cache freed) while the loss runs."
    )
    vllm_sync_bucket_mb: int = Field(
        512, ge=1, description="vllm engine: weights are gathered and loaded in buckets of about this size."
    )
    max_logprob_gap: float = Field(
        0.003,
        ge=0,
        description="Fail the run when the rollout engine's sampled-token log-probs differ from the trainer's by "
        "more than this (mean |difference| per token, nats): a stale weight sync; 0 disables the check. The "
        "default sits between a synced engine's noise (up to 1.6e-3 in bf16) and one missed sync at lr 2e-5 "
        "(6.7e-3); see docs/training.md.",
    )
    static_cache: Literal["auto", "on", "off"] = Field(
        "auto", description="Static KV cache with compiled decoding; 'auto' uses it on CUDA only."
    )
    loss_temperature: float = Field(0.5, gt=0, le=10, description="Temperature T of softmax(logits/T) in the loss.")
    reduction: Literal["token_mean", "sequence_mean", "last_k"] = Field(
        "token_mean", description="How per-token entropies are averaged."
    )
    last_k: int = Field(16, ge=1, description="Tokens per completion used by reduction 'last_k'.")
    loss_reduction: Literal["global", "micro_batch"] = Field(
        "global",
        description="How micro-batches combine into one update: 'global' takes train.reduction over every rollout "
        "of the step (every rank), independent of how it is split; 'micro_batch' averages each micro-batch's own "
        "mean, as the research code (DeepSpeed gradient accumulation) does.",
    )
    loss_chunk_tokens: int = Field(1024, ge=1, description="Tokens per fp32 [tokens x vocab] chunk in the loss.")
    learning_rate: float = Field(2e-5, gt=0, le=1, description="Peak learning rate of AdamW.")
    lr_schedule: Literal["constant", "cosine"] = Field("constant", description="Learning-rate schedule.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="Cosine floor as a fraction of the peak rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="AdamW beta2.")
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    grad_clip: float = Field(1.0, ge=0, description="Gradient-norm clip; 0 disables it.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Training precision.")
    strategy: Literal["none", "ddp", "zero2", "zero3"] = Field(
        "none", description="Distribution: plain, DDP, or DeepSpeed ZeRO-2/3."
    )
    offload_optimizer: bool = Field(False, description="DeepSpeed: optimizer states in CPU memory.")
    offload_params: bool = Field(False, description="DeepSpeed ZeRO-3: parameters in CPU memory.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    save_every: int = Field(0, ge=0, description="Save a step folder every N steps (0: only at the end).")
    keep_last: int | None = Field(
        None,
        ge=1,
        description="Keep only the newest N step folders locally; unset: all of them without store.uri, the newest "
        "2 with it (older ones are in the store; a step is never removed before its upload).",
    )
    keep_state: int = Field(
        1, ge=1, description="Keep the resume state (optimizer, RNG, data position) of only the newest N steps."
    )
    nodes: int = Field(1, ge=1, description="Nodes to train on (more than 1 runs a Kubeflow TrainJob).")
    stop_grace_s: float = Field(
        20.0,
        gt=0,
        description="Seconds a long command has after SIGTERM to finish or abandon in-flight work (below "
        "Kubernetes' 30 s default; TrainJob pods get terminationGracePeriodSeconds from it).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.offload_optimizer and self.strategy not in ("zero2", "zero3"):
            raise ValueError(f"offload_optimizer needs strategy zero2 or zero3, not {self.strategy!r}")
        if self.offload_params and self.strategy != "zero3":
            raise ValueError(f"offload_params needs strategy zero3, not {self.strategy!r}")
        if self.vllm_sleep and self.rollout_engine != "vllm":
            raise ValueError(f"vllm_sleep needs rollout_engine 'vllm', not {self.rollout_engine!r}")
        if self.lora.enabled and self.strategy == "zero3":
            raise ValueError("lora.enabled is supported with strategy none, ddp or zero2, not 'zero3'")
        if self.samples_per_prompt is not None and self.rollouts_per_step % self.samples_per_prompt:
            raise ValueError(
                f"rollouts_per_step {self.rollouts_per_step} is not a multiple of samples_per_prompt "
                f"{self.samples_per_prompt}"
            )
        return self
