"""What a local step folder holds, as the trainer writes it and the store reads it.

`step-N/` is the evaluable model (weights, config, tokenizer) plus `checkpoint.json`, the marker written
last: a folder without it does not count. Resume state (optimizer, scheduler, RNG, data position) sits in
`step-N/trainer_state/`, a file set of its own that evaluation never moves.
"""

from __future__ import annotations

MARKER = "checkpoint.json"
REPORT_DIR = "report"  # beside the steps in a run's store prefix: the run's report (results.json, pages, plots)
STATE_DIR = "trainer_state"
STATE_FILE = "state.json"


def is_state_path(relative: str) -> bool:
    """Whether a '/'-separated path inside a step folder belongs to its resume state."""
    return relative == STATE_DIR or relative.startswith(f"{STATE_DIR}/")
