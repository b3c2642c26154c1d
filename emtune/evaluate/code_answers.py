"""Code answers: the program a completion gives (its last fenced Python block, else the whole completion), and
the program the sandbox runs for it (answer, then the benchmark's tests)."""

from __future__ import annotations

import re

# A fenced block: ```python (or ```py, or a bare ```) up to the next closing fence, or the end of the text when
# generation stopped before it closed.
_FENCE = re.compile(r"```[ \t]*(python3?|py)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str:
    """The last fenced Python block (a bare ``` block when there is none tagged python), else the raw text."""
    blocks = list(_FENCE.finditer(completion))
    tagged = [block for block in blocks if block.group(1)]
    chosen = (tagged or blocks)[-1:] if blocks else []
    return chosen[0].group(2) if chosen else completion


def program_with_tests(code: str, tests: str) -> str:
    """What the sandbox runs: the answer, then the tests (which raise, and so exit non-zero, on a failure)."""
    return f"{code.rstrip()}\n\n\n{tests}"
