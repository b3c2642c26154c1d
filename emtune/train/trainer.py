"""The entropy-minimisation training loop, top to bottom.

Each optimizer step: sample `rollouts_per_step` completions (each rank its share), weigh every generated
token's entropy so the step's loss is one mean over all of them, backpropagate micro-batch by micro-batch,
then one optimizer update. Step folders are written every `save_every` steps and at the end.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emtune import interrupts
from emtune.config import RunConfig
from emtune.data.formats import encode_prompt
from emtune.data.prompt_set import PromptSet, read_prompt_set
from emtune.errors import DataError, TrainingError
from emtune.faults import pause_point
from emtune.fsutil import check_can_create
from emtune.losses import position_entropy, reduction_terms
from emtune.model import tiny_math
from emtune.model.generate import stop_token_ids
from emtune.model.loading import load_model, load_tokenizer, resolve_model
from emtune.train.batching import MicroBatch, collate
from emtune.train.checkpointing import Checkpointer, hold_run_folder, hyperparameters
from emtune.train.distributed import Geometry, build_accelerator, build_optimizer, plan_geometry, world_from_env
from emtune.train.logprob_guard import check_logprob_gap, sampled_logprobs
from emtune.train.metrics import MetricsLog, StepTally
from emtune.train.rollout import HFRolloutEngine, Rollout, RolloutEngine, RolloutRequest, SamplingParams, batch_seed

log = logging.getLogger(__name__)

BUILTIN_DEMO_PROMPTS = "builtin:demo"
# The one-shot addition problem chosen for builtin:tiny-math, in the format that model was trained on.
BUILTIN_DEMO_ADD_PROMPTS = "builtin:demo-add"
# The embedded default problem, so the demo needs no data file.
DEMO_PROBLEM = (
    "A rectangle has a perimeter of 30 centimetres and its length is twice its width. "
    "What is the area of the rectangle, in square centimetres?"
)


@dataclass
class TrainResult:
    run_dir: Path
    steps: list[int]  # step folders saved by this run
    store_uris: dict[int, str] = field(default_factory=dict)  # step -> URI, when store.uri is set
    metrics: list[dict[str, Any]] = field(default_factory=list)


def load_prompts(cfg: RunConfig) -> PromptSet:
    source = cfg.train.prompts
    if source == BUILTIN_DEMO_PROMPTS:
        return PromptSet(problems=[DEMO_PROBLEM], prompt_format=None)
    if source == BUILTIN_DEMO_ADD_PROMPTS:
        return PromptSet(problems=[tiny_math.one_shot_problem()], prompt_format=tiny_math.PROMPT_FORMAT)
    if source is None:
        if cfg.data.output is None:
            raise DataError("no prompts: set train.prompts (or --prompts) or data.output to a prepared prompt set")
        source = str(cfg.data.output)
    return read_prompt_set(Path(source), field=cfg.data.field)


class Trainer:
    def __init__(self, cfg: RunConfig, resume: bool = False) -> None:
        self.cfg = cfg
        t = cfg.train
        self.run_dir = Path(cfg.run.out_dir)
        world_size, rank = world_from_env()
        self.geometry: Geometry = plan_geometry(t, world_size, rank)
        # Everything a user can get wrong is checked before the model is loaded.
        check_can_create(self.run_dir)
        prompt_set = load_prompts(cfg)
        self.tokenizer = load_tokenizer(cfg.model.path)
        self.prompt_ids = self._encode_prompts(prompt_set)
        self.samples_per_prompt = t.samples_per_prompt or t.rollouts_per_step

        self.accelerator = build_accelerator(t, self.geometry)
        # Refuses a used run folder without --resume and probes the store, before the model is loaded.
        self.checkpoints = Checkpointer(
            cfg, self.accelerator, resume=resume, hyperparameters=hyperparameters(cfg, self.prompt_ids)
        )
        self.model: Any = self._load_model()  # later wrapped by accelerate (DDP, DeepSpeed engine)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(trainable, t, on_gpu=torch.cuda.is_available())
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.scheduler = self._build_scheduler()  # on the prepared optimizer: DeepSpeed may have built it
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.is_deepspeed = t.strategy in ("zero2", "zero3")
        self.eos_ids = stop_token_ids(self.accelerator.unwrap_model(self.model), self.tokenizer.eos_token_id)
        self.engine = self._build_engine()
        self.params = SamplingParams(t.temperature, t.top_p, t.top_k, t.repetition_penalty, t.max_new_tokens)
        self.start_step = self.checkpoints.restore() if resume else 0
        # An engine with its own weights starts from the trainer's: a resumed step, or weights made in memory.
        self.engine.sync_weights(self.accelerator.unwrap_model(self.model))
        self.checkpoints.start()

    # ----------------------------------------------------------------------------------------- set-up
    def _encode_prompts(self, prompt_set: PromptSet) -> list[list[int]]:
        prompt_format = prompt_set.prompt_format or self.cfg.data.prompt_format
        encoded = []
        for index, problem in enumerate(prompt_set.problems):
            ids = encode_prompt(problem, prompt_format, self.tokenizer)
            if len(ids) > self.cfg.train.max_prompt_tokens:
                raise DataError(
                    f"prompt {index} is {len(ids)} tokens long; train.max_prompt_tokens allows at most "
                    f"{self.cfg.train.max_prompt_tokens}"
                )
            encoded.append(ids)
        return encoded

    def _build_engine(self) -> RolloutEngine:
        t = self.cfg.train
        if t.rollout_engine == "vllm":
            from emtune.train.rollout_vllm import VLLMRolloutEngine

            dtype = self.cfg.model.dtype
            if dtype == "auto":
                dtype = "bfloat16" if t.precision == "bf16" else "float32"
            return VLLMRolloutEngine(
                resolve_model(self.cfg.model.path), eos_ids=self.eos_ids, dtype=dtype,
                max_model_len=t.max_prompt_tokens + t.max_new_tokens, max_num_seqs=t.rollout_batch_size,
                gpu_memory_utilization=t.vllm_gpu_memory_utilization, sleep=t.vllm_sleep,
                sync_bucket_mb=t.vllm_sync_bucket_mb, seed=self.cfg.run.seed, world_size=self.geometry.world_size,
                trust_remote_code=self.cfg.model.trust_remote_code,
            )  # fmt: skip
        return HFRolloutEngine(
            self.accelerator.unwrap_model(self.model),
            eos_ids=self.eos_ids,
            pad_id=self.tokenizer.pad_token_id,
            static_cache=t.static_cache == "on" or (t.static_cache == "auto" and torch.cuda.is_available()),
            zero3_engine=self.model if t.strategy == "zero3" else None,
            multi_rank=self.geometry.world_size > 1,
        )

    def _load_model(self) -> Any:
        t = self.cfg.train
        dtype = self.cfg.model.dtype
        if dtype == "auto":
            # DeepSpeed keeps fp32 master weights itself; elsewhere autocast wants fp32 parameters.
            dtype = "bfloat16" if t.precision == "bf16" and t.strategy in ("zero2", "zero3") else "float32"
        model: Any = load_model(self.cfg.model.path, dtype=dtype, trust_remote_code=self.cfg.model.trust_remote_code)
        if t.gradient_checkpointing:
            # transformers 5.24 renamed the method (and its keyword); older 5.x only has the first spelling.
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        if t.lora.enabled:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=t.lora.r, lora_alpha=t.lora.alpha, lora_dropout=t.lora.dropout,
                target_modules=t.lora.target_modules, task_type="CAUSAL_LM",
            )  # fmt: skip
            model = get_peft_model(model, lora)
        return model

    def _build_scheduler(self) -> Any:
        from transformers import get_scheduler

        t = self.cfg.train
        if t.lr_schedule == "cosine":
            return get_scheduler(
                "cosine_with_min_lr", self.optimizer, num_warmup_steps=t.warmup_steps,
                num_training_steps=t.max_steps, scheduler_specific_kwargs={"min_lr_rate": t.min_lr_ratio},
            )  # fmt: skip
        return get_scheduler("constant_with_warmup", self.optimizer, num_warmup_steps=t.warmup_steps)

    # --------------------------------------------------------------------------------------- training
    def prompts_for_step(self, step: int) -> list[list[int]]:
        """The step's rollouts' prompts, global order; data order reshuffles (seeded) every epoch."""
        per_step = self.cfg.train.rollouts_per_step // self.samples_per_prompt
        count = len(self.prompt_ids)
        orders: dict[int, list[int]] = {}  # a step spans at most a few epochs: shuffle each once
        chosen = []
        for position in range((step - 1) * per_step, step * per_step):
            epoch, offset = divmod(position, count)
            if epoch not in orders:
                orders[epoch] = list(range(count))
                random.Random(self.cfg.run.seed * 1_000_003 + epoch).shuffle(orders[epoch])
            chosen.append(self.prompt_ids[orders[epoch][offset]])
        return [prompt for prompt in chosen for _ in range(self.samples_per_prompt)]

    def sample(self, step: int) -> list[Rollout]:
        g, t = self.geometry, self.cfg.train
        first = g.rank * g.rollouts_per_rank
        mine = self.prompts_for_step(step)[first : first + g.rollouts_per_rank]
        requests = [
            RolloutRequest(mine[i : i + t.rollout_batch_size], batch_seed(self.cfg.run.seed, step, first + i))
            for i in range(0, len(mine), t.rollout_batch_size)
        ]
        rollouts = self.engine.generate(requests, self.params)
        pause_point("rollout")
        return rollouts

    def train_step(self, step: int) -> dict[str, Any]:
        """Rollouts, then the loss over micro-batches (gradients accumulate), then one optimizer update."""
        acc = self.accelerator
        started = time.perf_counter()
        rollouts = self.sample(step)
        sampled = time.perf_counter()
        batches, scales = self._micro_batches(rollouts)
        tally = StepTally(acc.device)
        grad_norm = None
        self.model.train()
        for index, (batch, scale) in enumerate(zip(batches, scales, strict=True)):
            with acc.accumulate(self.model):
                loss = self._micro_batch_loss(batch, scale, tally)
                if index == len(batches) - 1:
                    # One host sync per step, before the update (DeepSpeed steps inside the last backward).
                    self._stop_on_nonfinite_loss(tally.nonfinite, step)
                acc.backward(loss)
                # Applied on the last micro-batch only: accelerate/DeepSpeed skip it while accumulating.
                grad_norm = self._optimizer_step()
        lr, grad_norm = self._after_update(grad_norm)
        return self._step_metrics(step, rollouts, tally, lr, grad_norm, started, sampled)

    def _micro_batches(self, rollouts: list[Rollout]) -> tuple[list[MicroBatch], list[torch.Tensor]]:
        """The step's micro-batches (host tensors), and for each the factor that turns its summed entropy into
        its share of the update (train.loss_reduction):

        - `global`: one mean (train.reduction) over every generated token of every micro-batch and rank;
        - `micro_batch`: the research code's, the mean of each micro-batch's own mean (DeepSpeed divides each
          micro-batch's loss by the accumulation steps), so a token of a short micro-batch weighs more.
        """
        t, g, acc = self.cfg.train, self.geometry, self.accelerator
        batches = [collate(rollouts[i : i + t.micro_batch_size], self.tokenizer.pad_token_id)
                   for i in range(0, len(rollouts), t.micro_batch_size)]  # fmt: skip
        denominators = [reduction_terms(b.completion_mask, t.reduction, t.last_k)[1] for b in batches]
        if t.loss_reduction == "micro_batch":
            # accelerate/DeepSpeed divide by the accumulation steps and ranks average: a mean of the means.
            return batches, [1 / d.clamp(min=1).to(acc.device) for d in denominators]
        denominator = acc.reduce(torch.as_tensor(sum(denominators), device=acc.device).float(), "sum")
        # Gradients are averaged over ranks and (by accelerate/DeepSpeed) divided by the accumulation steps:
        # scaling by both makes the update the exact mean over every rollout of the step.
        scale = g.micro_batches_per_rank * g.world_size / denominator.clamp(min=1)
        return batches, [scale] * len(batches)

    def _micro_batch_loss(self, host_batch: MicroBatch, scale: torch.Tensor, tally: StepTally) -> torch.Tensor:
        """The micro-batch's scaled entropy loss; its metrics (and the engine's log-prob gap) go to `tally`."""
        t, g = self.cfg.train, self.geometry
        batch = host_batch.to(self.accelerator.device)
        logits = self.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
            logits_to_keep=batch.logits_to_keep, use_cache=False,
        ).logits  # fmt: skip
        # The host copy of the mask: the loss reads its spans without waiting for the device.
        entropy = position_entropy(logits, host_batch.completion_mask, t.loss_temperature, t.loss_chunk_tokens)
        numerators, _ = reduction_terms(batch.completion_mask, t.reduction, t.last_k)
        loss = (entropy * numerators).sum() * scale
        gap = None
        if batch.rollout_logprobs is not None:
            tokens = batch.input_ids[:, -logits.shape[1] :]
            gap = (sampled_logprobs(logits, tokens, t.loss_chunk_tokens) - batch.rollout_logprobs).abs()
            gap = gap * batch.completion_mask
        share = loss.detach() / g.micro_batches_per_rank / g.world_size
        tally.add(share, entropy.detach(), batch.completion_mask, gap)
        return loss

    def _optimizer_step(self) -> torch.Tensor | None:
        """Clip (outside DeepSpeed, which clips itself), step and zero the gradients; the norm when clipped."""
        t, acc = self.cfg.train, self.accelerator
        grad_norm = None
        if acc.sync_gradients and t.grad_clip > 0 and not self.is_deepspeed:
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _after_update(self, grad_norm: torch.Tensor | None) -> tuple[float, Any]:
        """The update's learning rate and gradient norm; the scheduler moves on and the engine gets the weights."""
        if self.is_deepspeed:
            grad_norm = self.model.get_global_grad_norm()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        # The engine samples the next step with the weights this update produced.
        self.engine.sync_weights(self.accelerator.unwrap_model(self.model))
        return lr, grad_norm

    def _step_metrics(
        self, step: int, rollouts: list[Rollout], tally: StepTally, lr: float, grad_norm: Any, started: float,
        sampled: float,
    ) -> dict[str, Any]:  # fmt: skip
        t, acc = self.cfg.train, self.accelerator
        tally.totals[tally.FINISHED] = sum(r.finished for r in rollouts)
        totals = acc.reduce(tally.totals, "sum")
        with_gap = all(r.logprobs is not None for r in rollouts)
        gap_max = tally.gap_max
        if with_gap and self.geometry.world_size > 1:
            gap_max = acc.gather(gap_max.reshape(1)).max()
        elapsed = time.perf_counter() - started
        generated = float(totals[tally.TOKENS])
        return {
            "step": step,
            "loss": float(totals[tally.LOSS]),
            "entropy": float(totals[tally.ENTROPY]) / max(generated, 1.0),
            "completion_tokens_mean": generated / t.rollouts_per_step,
            "finished_fraction": float(totals[tally.FINISHED]) / t.rollouts_per_step,
            "lr": lr,
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "logprob_gap": float(totals[tally.GAP]) / max(generated, 1.0) if with_gap else None,
            "logprob_gap_max": float(gap_max) if with_gap else None,
            "tokens_per_s": generated / elapsed,
            "sample_s": sampled - started,
            "step_s": elapsed,
        }

    def _stop_on_nonfinite_loss(self, nonfinite: torch.Tensor, step: int) -> None:
        """Every rank learns of a non-finite loss on any rank, so all stop together instead of the healthy
        ones waiting forever in the gradient all-reduce."""
        if self.geometry.world_size > 1:
            nonfinite = self.accelerator.reduce(nonfinite, "sum")
        if nonfinite.item() > 0:
            raise TrainingError(
                f"loss is not finite at step {step} (in {int(nonfinite.item())} micro-batches); lower "
                "train.learning_rate or check the model"
            )

    # ---------------------------------------------------------------------------------------------- run
    def train(self, on_step: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
        t, acc = self.cfg.train, self.accelerator
        result = TrainResult(run_dir=self.run_dir, steps=[])
        metrics_log = None
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            metrics_log = MetricsLog(
                self.run_dir, self.start_step, self.cfg.logging, self.cfg.run.name, self.cfg.model_dump(mode="json")
            )
        try:
            for step in range(self.start_step + 1, t.max_steps + 1):
                metrics = self.train_step(step)
                result.metrics.append(metrics)
                if metrics_log is not None:
                    with interrupts.shielded():  # never a torn line
                        metrics_log.write(metrics)
                if on_step is not None:
                    on_step(metrics)
                check_logprob_gap(metrics, t.max_logprob_gap)  # after the line is logged: the gap stays on record
                if step == t.max_steps or (t.save_every and step % t.save_every == 0):
                    data_position = step * (t.rollouts_per_step // self.samples_per_prompt)
                    self.checkpoints.save(step, metrics, self.model, self.tokenizer, data_position)
                    result.steps.append(step)
            result.store_uris = self.checkpoints.finish(result.steps)
        except BaseException:
            self.checkpoints.abort()
            raise
        finally:
            if metrics_log is not None:
                metrics_log.close()
        acc.wait_for_everyone()
        return result


def run(cfg: RunConfig, resume: bool = False, on_step: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train per `cfg` and return what was saved. The step function the CLI and the pipeline call."""
    with hold_run_folder(cfg):
        return Trainer(cfg, resume=resume).train(on_step)
