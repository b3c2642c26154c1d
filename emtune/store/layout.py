"""What a local step folder holds, as the trainer writes it and the store reads it.

`step-N/` is the evaluable model (weights, config, tokenizer) plus `checkpoint.json`, the marker written
last: a folder without it does not count. Resume state (optimizer, scheduler, RNG, data position) sits in
`step-N/trainer_state/`, a file set of its own that evaluation never moves. Every place that names or parses
a step folder (a run folder, a store key or URI, an evaluation label) does it with the helpers here.
"""

from __future__ import annotations

import re

MARKER = "checkpoint.json"
REPORT_DIR = "report"  # beside the steps in a run's store prefix: the run's report (results.json, pages, plots)
STATE_DIR = "trainer_state"
STATE_FILE = "state.json"
# A step folder's name, as a regular expression fragment whose one group is the step number.
STEP_PATTERN = r"step-(\d+)"
_STEP_NAME = re.compile(rf"^{STEP_PATTERN}$")
_PARTIAL_NAME = re.compile(rf"^\.{STEP_PATTERN}\.partial$")


def step_name(step: int) -> str:
    return f"step-{step}"


def parse_step_name(name: str) -> int | None:
    """N for a folder named `step-N`; None for any other name."""
    match = _STEP_NAME.match(name)
    return int(match.group(1)) if match else None


def partial_name(step: int) -> str:
    """The folder a step is written in before it is renamed to `step_name(step)`."""
    return f".{step_name(step)}.partial"


def is_partial_name(name: str) -> bool:
    return _PARTIAL_NAME.match(name) is not None


def is_state_path(relative: str) -> bool:
    """Whether a '/'-separated path inside a step folder belongs to its resume state."""
    return relative == STATE_DIR or relative.startswith(f"{STATE_DIR}/")
