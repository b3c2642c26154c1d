"""The fault suite: commands stopped at named points (EMTUNE_FAULT_PAUSE), a fault proxy in front of a real S3
server, full and read-only disks, two writers at once. Slow cases carry the `faults` marker (`make test-faults`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The real S3 servers' plugin lives beside the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))


import pytest


@pytest.fixture
def make_step_dir_local(tmp_path: Path) -> Path:
    """A small sealed-looking step folder (no store needed)."""
    folder = tmp_path / "local-run" / "step-1"
    (folder / "trainer_state").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(4096))
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    (folder / "trainer_state" / "state.json").write_text('{"step": 1}')
    (folder / "checkpoint.json").write_text('{"step": 1, "run_id": "r", "config_hash": "h", "metrics": {}}')
    return folder
