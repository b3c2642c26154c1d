"""Resume from the store: bring its newest complete step into an empty local run folder."""

from __future__ import annotations

import logging
from pathlib import Path

from emtune.store import open_store
from emtune.store.config import StoreConfig

log = logging.getLogger(__name__)


def fetch_latest(uri: str, cfg: StoreConfig, local_run_dir: Path) -> Path | None:
    """Pull the newest complete step into `local_run_dir/step-N` (verified); None when the store has none."""
    store = open_store(uri, cfg)
    step = store.latest()
    if step is None:
        log.info("store %s holds no complete step to resume from", store.root_uri)
        return None
    return store.pull(step, Path(local_run_dir) / store.step_key(step))
