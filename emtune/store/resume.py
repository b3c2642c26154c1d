"""Resume from the store: bring its newest complete step, with its resume state, into a local run folder."""

from __future__ import annotations

import logging
from pathlib import Path

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.store import open_store

log = logging.getLogger(__name__)


def fetch_latest(uri: str, cfg: StoreConfig, local_run_dir: Path) -> Path | None:
    """Pull the newest complete step and its resume state into `local_run_dir/step-N` (verified).

    None when the store holds no complete step. A newest step that cannot be resumed from (a model pushed
    for evaluation, or a step whose resume state was not kept) stops here: restarting from step 0 instead
    would silently throw the run's progress away.
    """
    store = open_store(uri, cfg)
    step = store.latest()
    if step is None:
        log.info("store %s holds no complete step to resume from", store.root_uri)
        return None
    manifest = store.read_manifest(step)
    if manifest.kind == "model":
        raise StoreError(
            f"the newest step in {store.root_uri}, step {step}, is model-only (pushed from a folder without "
            "checkpoint.json) and cannot be resumed; train from its weights as a new run with "
            f"--model {store.step_uri(step)} --out NEW_FOLDER"
        )
    if not store.has_state(step) and not manifest.files_under_state():
        raise StoreError(
            f"the newest step in {store.root_uri}, step {step}, has no resume state (store.state_every decides "
            "which steps keep it); resume from the local run folder, or train from its weights as a new run with "
            f"--model {store.step_uri(step)} --out NEW_FOLDER"
        )
    return store.pull(step, Path(local_run_dir) / store.step_key(step), with_state=True)
