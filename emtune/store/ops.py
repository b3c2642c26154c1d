"""What `emtune ckpt` does, addressed by URI: a run URI (`<store>`) or a step URI (`<store>/step-N`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.fsutil import check_output
from emtune.store import CheckpointStore, PushResult, StepListing, open_store, split_step_uri
from emtune.store.layout import MARKER, STATE_DIR, STATE_FILE, parse_step_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalStep:
    step: int | None
    run_id: str
    config_hash: str
    metrics: dict[str, Any]
    sealed: bool  # the trainer wrote its marker: a step of a run, not just a model folder
    has_state: bool  # resume state is present


def read_local_step(folder: Path) -> LocalStep:
    """What the trainer recorded about a step folder: its marker and trainer state, where present."""
    folder = Path(folder)
    marker = _read_json(folder / MARKER)
    state = _read_json(folder / STATE_DIR / STATE_FILE)
    step = marker.get("step", state.get("step"))
    if step is None:
        step = parse_step_name(folder.name)
    return LocalStep(
        step=None if step is None else int(step),
        run_id=str(marker.get("run_id", state.get("run_id", ""))),
        config_hash=str(marker.get("config_hash", state.get("config_hash", ""))),
        metrics=dict(marker.get("metrics") or {}),
        sealed=(folder / MARKER).is_file(),
        has_state=(folder / STATE_DIR / STATE_FILE).is_file(),
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def push_folder(local_step_dir: Path, uri: str, cfg: StoreConfig, step: int | None = None) -> PushResult:
    """Push a local step folder to a run URI (step from the folder) or to an explicit step URI.

    A folder the trainer sealed (it has checkpoint.json) is pushed as a step of a run, with its resume state
    when it has one; any other folder is a plain model, recorded as model-only: evaluable, never resumed from.
    """
    run_uri, uri_step = split_step_uri(uri)
    info = read_local_step(local_step_dir)
    chosen = [s for s in (uri_step, step, info.step) if s is not None]
    if not chosen:
        raise StoreError(
            f"cannot tell the step of {str(local_step_dir)!r}: it has no {MARKER} and is not named step-N; "
            "pass --step or a .../step-N URI"
        )
    if len(set(chosen)) > 1:
        raise StoreError(f"conflicting steps for {str(local_step_dir)!r}: {sorted(set(chosen))}; give one")
    if not info.sealed:
        log.info("%s has no %s: pushing it as a model-only step (evaluable, not resumable)", local_step_dir, MARKER)
    store = open_store(run_uri, cfg)
    return store.upload_step(
        local_step_dir,
        chosen[0],
        run_id=info.run_id,
        config_hash=info.config_hash,
        metrics=info.metrics,
        kind="step" if info.sealed else "model",
        with_state=info.sealed and info.has_state,
    )


def resolve_step(uri: str, cfg: StoreConfig) -> tuple[CheckpointStore, int]:
    """A step URI's store and step; a run URI means its newest complete step."""
    run_uri, step = split_step_uri(uri)
    store = open_store(run_uri, cfg)
    if step is None:
        step = store.latest()
        if step is None:
            raise StoreError(f"{store.root_uri} holds no complete step")
    return store, step


def pull_uri(uri: str, local_dir: Path, cfg: StoreConfig, *, overwrite: bool = False) -> Path:
    check_output(local_dir, overwrite=overwrite)  # a refused folder should not wait on the store first
    store, step = resolve_step(uri, cfg)
    return store.pull(step, local_dir, overwrite=overwrite)


def verify_uri(uri: str, cfg: StoreConfig) -> list[str]:
    """Verify one step, or every complete step of a run URI; returns the verified step URIs."""
    run_uri, step = split_step_uri(uri)
    store = open_store(run_uri, cfg)
    steps = [step] if step is not None else store.complete_steps()
    if not steps:
        raise StoreError(f"{store.root_uri} holds no complete step to verify")
    for each in steps:
        store.verify(each)
    return [store.step_uri(each) for each in steps]


def list_uri(uri: str, cfg: StoreConfig) -> tuple[CheckpointStore, list[StepListing]]:
    store = open_store(split_step_uri(uri)[0], cfg)
    if not store.exists():
        raise StoreError(f"store {store.root_uri} does not exist (nothing has been pushed there); check the URI")
    return store, store.listing()


def latest_uri(uri: str, cfg: StoreConfig) -> str:
    store, step = resolve_step(split_step_uri(uri)[0], cfg)
    return store.step_uri(step)


def remove_uri(uri: str, cfg: StoreConfig, *, keep_last: int | None = None) -> list[str]:
    """Remove one step (step URI) or apply retention to a run URI; returns the removed step URIs."""
    run_uri, step = split_step_uri(uri)
    store = open_store(run_uri, cfg)
    if step is not None:
        if keep_last is not None:
            raise StoreError("--keep-last applies to a run URI, not to a single step URI")
        if step not in {listing.step for listing in store.listing()}:
            raise StoreError(f"{store.step_uri(step)} does not exist")
        store.remove(step)
        return [store.step_uri(step)]
    if keep_last is None:
        raise StoreError(f"{uri!r} is a run URI: pass a .../step-N URI to remove one step, or --keep-last N")
    return [store.step_uri(each) for each in store.apply_retention(keep_last)]
