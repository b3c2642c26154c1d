"""The fault suite: commands stopped at named points (EMTUNE_FAULT_PAUSE), a fault proxy in front of a real S3
server, full and read-only disks, two writers at once. Slow cases carry the `faults` marker (`make test-faults`)."""

from __future__ import annotations

import sys
from pathlib import Path

# The real S3 servers' plugin lives beside the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
