"""A training run's persistence: step folders on local disk, their copies in the store, and resume.

Save: every rank writes `.step-N.partial/` (rank 0 the model export, each rank its optimizer shards); rank 0
seals it into `step-N/`, queues it for the store and applies local retention (the newest `train.keep_last`
steps, the resume state of the newest `train.keep_state`). Restore: the newest complete local step, else the
store's newest with its resume state; a run trained with other hyper-parameters is refused. Before training,
every complete local step the store lacks is pushed, so a step sealed before a crash still reaches the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from emtune import interrupts
from emtune.config import RunConfig
from emtune.errors import ConfigError, TrainingError
from emtune.faults import pause_point
from emtune.fsutil import exclusive_lock
from emtune.store.integrity import verify_sealed
from emtune.store.layout import step_name
from emtune.train import checkpoint

log = logging.getLogger(__name__)

# Keys `--resume` accepts changed: they extend the run, say where it is kept, or change how the same update
# is computed or checked (the stale-sync guard's threshold), not what it is.
RESUME_MAY_CHANGE = frozenset(
    {
        "train.max_steps", "train.save_every", "train.keep_last", "train.keep_state", "train.nodes",
        "train.prompts", "train.micro_batch_size", "train.loss_chunk_tokens", "train.gradient_checkpointing",
        "train.static_cache", "train.offload_optimizer", "train.offload_params", "train.stop_grace_s",
        "train.max_logprob_gap",
    }
)  # fmt: skip
PROMPTS_KEY = "prompts (sha256 of the encoded prompts)"
# With a store, local steps older than the newest two are already in it (pruning waits for their upload).
KEEP_LAST_WITH_STORE = 2


def pushes_state(step: int, max_steps: int, state_every: int) -> bool:
    """Whether step's resume state goes to the store: the final step's, and every `state_every`-th step's."""
    return step == max_steps or bool(state_every and step % state_every == 0)


def hyperparameters(cfg: RunConfig, prompt_ids: list[list[int]]) -> dict[str, Any]:
    """What a resumed run must share with the run it continues, by dotted key."""
    values = {f"train.{key}": value for key, value in _flatten(cfg.train.model_dump(mode="json")).items()}
    values.update({"run.seed": cfg.run.seed, "model.dtype": cfg.model.dtype})
    values[PROMPTS_KEY] = hashlib.sha256(json.dumps(prompt_ids).encode()).hexdigest()[:16]
    return {key: value for key, value in values.items() if key not in RESUME_MAY_CHANGE}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def merged_lora_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The base model's weights with the LoRA adapters merged in, computed one layer at a time on the
    accelerator and kept in host memory, so the model being trained is neither copied nor changed."""
    from peft.tuners.lora import LoraLayer

    inner = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    for name, module in inner.named_modules():
        if isinstance(module, LoraLayer):
            layer: Any = module  # a LoRA Linear/Embedding/Conv: each computes its own delta
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    key = f"{name}.base_layer.weight"
                    delta = layer.get_delta_weight(adapter)
                    deltas[key] = deltas[key] + delta if key in deltas else delta
    merged = {}
    with torch.no_grad():
        for key, tensor in inner.state_dict().items():
            if ".lora_" in key:
                continue
            value = tensor + deltas[key] if key in deltas else tensor
            merged[key.replace(".base_layer.", ".")] = value.detach().cpu()
    return merged


def _write_failure(exc: Exception) -> str | None:
    """The reason, when `exc` is the disk refusing a write (full, read-only, quota): torch and safetensors report
    it as RuntimeError("PytorchStreamWriter failed writing ...") or SafetensorError("... (os error 28)")."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc)
    if "PytorchStreamWriter" in text or "(os error " in text:
        return text.splitlines()[0]
    return None


def hold_run_folder(cfg: RunConfig) -> contextlib.AbstractContextManager[None]:
    """One writer per run folder for the whole command: rank 0 holds its lock (other ranks write only under it),
    so a second `train --out` or a `--resume` beside a live run is refused before it writes anything."""
    from emtune.train.distributed import world_from_env

    if world_from_env()[1] != 0:
        return contextlib.nullcontext()
    return exclusive_lock(Path(cfg.run.out_dir), "run folder")


def export_model(model: Any, state_dict: dict[str, torch.Tensor], folder: Path, *, lora: bool) -> None:
    """The evaluable model: HF safetensors; LoRA adapters merged, since evaluation wants a plain model."""
    if lora:
        model.get_base_model().save_pretrained(
            folder, state_dict=merged_lora_state_dict(model), safe_serialization=True
        )
    else:
        model.save_pretrained(folder, state_dict=state_dict, safe_serialization=True)


class Checkpointer:
    """Saves, restores, prunes and pushes the step folders of one run (rank 0 talks to the store)."""

    def __init__(self, cfg: RunConfig, accelerator: Any, *, resume: bool, hyperparameters: dict[str, Any]) -> None:
        self.cfg = cfg
        self.acc = accelerator
        self.run_dir = Path(cfg.run.out_dir)
        self.hyperparameters = hyperparameters
        self.run_id = uuid.uuid4().hex[:12]
        existing = checkpoint.complete_steps(self.run_dir)
        if existing and not resume:
            raise TrainingError(
                f"run folder {str(self.run_dir)!r} already holds {step_name(existing[-1])}; pass --resume to "
                "continue it or choose another --out"
            )
        self.keep_last = cfg.train.keep_last or (KEEP_LAST_WITH_STORE if cfg.store.uri else None)
        if accelerator.is_local_main_process:
            for stale in checkpoint.clean_partials(self.run_dir):
                log.info("removed %s, left half-written by an earlier run", stale)
        self.store = self._open_store() if cfg.store.uri and accelerator.is_main_process else None
        self.pusher: Any = None
        self._sealer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emtune-sealer")
        self._sealing: Future[None] | None = None

    def _open_store(self) -> Any:
        """Reachable (S3: the bucket is checked at open) and writable (a probe object), before the first step."""
        from emtune.store import open_store

        assert self.cfg.store.uri
        store = open_store(self.cfg.store.uri, self.cfg.store)
        store.probe()
        log.info("store %s is reachable and writable", store.root_uri)
        return store

    # ------------------------------------------------------------------------------------------ restore
    def restore(self) -> int:
        """Load the newest complete local step's resume state (fetched from the store when there is no local
        step); returns that step, 0 when there is nothing to resume."""
        steps = checkpoint.complete_steps(self.run_dir)
        if not steps and self.cfg.store.uri:
            if self.acc.is_local_main_process:
                from emtune.store.resume import fetch_latest

                fetch_latest(self.cfg.store.uri, self.cfg.store, self.run_dir)
            self.acc.wait_for_everyone()
            steps = checkpoint.complete_steps(self.run_dir)
        if not steps:
            log.info("nothing to resume in %s; starting at step 0", self.run_dir)
            return 0
        folder = checkpoint.step_dir(self.run_dir, steps[-1])
        if not checkpoint.has_state(folder):
            raise TrainingError(
                f"the newest step folder {str(folder)!r} has no resume state ({checkpoint.STATE_DIR}/); train from "
                f"its weights as a new run with --model {folder} --out NEW_FOLDER"
            )
        verify_sealed(folder, with_state=True)  # a bit flipped since the seal is not resumed from
        state = checkpoint.read_state(folder)
        self._check_hyperparameters(state, folder)
        self.acc.load_state(str(folder / checkpoint.STATE_DIR))
        self.run_id = state.get("run_id", self.run_id)
        log.info("resumed from %s", folder)
        return int(state["step"])

    def _check_hyperparameters(self, state: dict[str, Any], folder: Path) -> None:
        """Refuse, rather than half-apply: a restored optimizer and scheduler carry the old learning rate."""
        recorded = state.get("hyperparameters")
        if recorded is None:
            log.warning("%s records no hyper-parameters (an older emtune wrote it); not checking them", folder)
            return
        keys = sorted(set(recorded) | set(self.hyperparameters))
        changed = [key for key in keys if recorded.get(key) != self.hyperparameters.get(key)]
        if changed:
            diffs = ", ".join(f"{key} {recorded.get(key)!r} -> {self.hyperparameters.get(key)!r}" for key in changed)
            raise ConfigError(
                f"--resume: {str(self.run_dir)!r} was trained with other values ({diffs}); resume with the values it "
                f"was trained with, or train from its weights as a new run with --model {folder} --out NEW_FOLDER"
            )

    # ---------------------------------------------------------------------------------------- reconcile
    def start(self) -> None:
        """Open the background pusher and push every complete local step the store lacks (or holds
        incompletely) before any new step is trained."""
        if self.store is None:
            return
        from emtune.store.uploader import BackgroundPusher

        self.pusher = BackgroundPusher(
            self.store, self.cfg.store.upload_queue, keep_last=self.cfg.store.keep_last,
            keep_state=self.cfg.train.keep_state,
        )  # fmt: skip
        local = checkpoint.complete_steps(self.run_dir)
        if local and self.cfg.store.keep_last:  # steps store retention would remove at once are not pushed again
            newest = sorted(set(local) | set(self.store.complete_steps()))[-self.cfg.store.keep_last :]
            local = [step for step in local if step >= newest[0]]
        missing = []
        for step in local:
            folder = checkpoint.step_dir(self.run_dir, step)
            with_state = self._state_wanted(step) and checkpoint.has_state(folder)
            if self.store.is_complete(step):
                verify_sealed(folder, with_state=False)
                self.store.repair(step, folder)  # the store's copy, compared with the manifest and made whole
                if not with_state or self.store.has_state(step):
                    continue
            self._submit(folder, step, checkpoint.read_marker(folder), with_state)
            missing.append(step)
        if missing:
            log.info("pushing steps %s, complete here but not in %s, before training on", missing, self.store.root_uri)
            self.pusher.wait()

    def _state_wanted(self, step: int) -> bool:
        return pushes_state(step, self.cfg.train.max_steps, self.cfg.store.state_every)

    def _submit(self, folder: Path, step: int, marker: dict[str, Any], with_state: bool) -> None:
        self.pusher.submit(
            folder, step, run_id=str(marker.get("run_id", self.run_id)),
            config_hash=str(marker.get("config_hash", self.cfg.digest())), metrics=dict(marker.get("metrics") or {}),
            with_state=with_state,
        )  # fmt: skip

    # --------------------------------------------------------------------------------------------- save
    def save(self, step: int, metrics: dict[str, Any], model: Any, tokenizer: Any, data_position: int) -> Path:
        """Write step N on every rank, seal it on rank 0, queue it for the store and prune old ones."""
        acc = self.acc
        partial, final = checkpoint.partial_dir(self.run_dir, step), checkpoint.step_dir(self.run_dir, step)
        self.wait_sealed()
        if acc.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        acc.wait_for_everyone()
        state_dict = acc.get_state_dict(model)  # a collective under ZeRO-3: every rank calls it
        try:
            if acc.is_main_process:
                export_model(acc.unwrap_model(model), state_dict, partial, lora=self.cfg.train.lora.enabled)
                tokenizer.save_pretrained(partial)
            acc.save_state(str(partial / checkpoint.STATE_DIR))
        except Exception as exc:
            reason = _write_failure(exc)
            if reason is None:
                raise
            shutil.rmtree(partial, ignore_errors=True)
            raise TrainingError(
                f"cannot write step {step} into {str(partial)!r}: {reason}; free space (or set train.keep_last) and "
                "resume with --resume"
            ) from None
        pause_point("save")  # written, not sealed
        acc.wait_for_everyone()
        if acc.is_main_process:
            # Hashing every file for the seal overlaps the next steps; the next save (or the end) waits for it.
            self._sealing = self._sealer.submit(self._seal, step, metrics, partial, final, data_position)
        acc.wait_for_everyone()
        if not acc.is_main_process and acc.is_local_main_process:
            # A node without the run folder shared: rank 0's copy became the step; this node's shards are spare.
            shutil.rmtree(partial, ignore_errors=True)
        return final

    def _seal(self, step: int, metrics: dict[str, Any], partial: Path, final: Path, data_position: int) -> None:
        config_hash = self.cfg.digest()
        state = {
            "step": step, "data_position": data_position, "run_id": self.run_id, "config_hash": config_hash,
            "world_size": self.acc.num_processes, "hyperparameters": self.hyperparameters,
        }  # fmt: skip
        marker = {"step": step, "metrics": metrics, "run_id": self.run_id, "config_hash": config_hash}
        # In the sealer thread; each change below is atomic on disk (marker, rename, prune), so a process that
        # ends at any point leaves only complete steps and `.step-N.partial` folders the next start removes.
        checkpoint.seal(partial, final, state, marker)
        if self.pusher is not None:  # may wait for room in the queue
            self._submit(final, step, marker, self._state_wanted(step))
        self._prune_local()

    def _prune_local(self) -> None:
        """Local retention; a step still waiting for its push is kept."""
        protect = set(self.pusher.pending_steps()) if self.pusher is not None else set()
        if self.keep_last:
            checkpoint.prune(self.run_dir, self.keep_last, protect=protect)
        checkpoint.prune_states(self.run_dir, self.cfg.train.keep_state, protect=protect)

    def wait_sealed(self, timeout: float | None = None) -> None:
        """Until the last save's seal has finished; its error (a full disk, say) is raised here."""
        sealing, self._sealing = self._sealing, None
        if sealing is not None:
            sealing.result(timeout=timeout)

    # ------------------------------------------------------------------------------------------- finish
    def finish(self, steps: list[int]) -> dict[int, str]:
        """Wait for the last seal and every push; the store URI of each step saved (empty without a store)."""
        self.wait_sealed()
        self._sealer.shutdown()
        if self.pusher is None:
            return {}
        self.pusher.close()
        self._prune_local()  # what pushes still in flight at the last seal kept
        return {step: self.pusher.store.step_uri(step) for step in steps}

    def abort(self) -> None:
        """Give the uploads already queued until `train.stop_grace_s` after the stop (signal or error) to finish,
        then abandon the rest (incomplete in the store, pushed again on resume); the error that stopped training
        stays the one reported."""
        deadline = interrupts.deadline(self.cfg.train.stop_grace_s)
        with contextlib.suppress(Exception):  # a seal not done by the deadline is abandoned: that step is lost
            self.wait_sealed(timeout=max(0.0, deadline - time.monotonic()))
        self._sealer.shutdown(wait=False, cancel_futures=True)
        if self.pusher is not None:
            with contextlib.suppress(Exception):
                self.pusher.abort(deadline)
