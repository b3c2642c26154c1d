"""The generated config reference shows what a default config really holds."""

from __future__ import annotations

import functools

from emtune.config import load_config
from emtune.config.docs import reference_markdown


def rows() -> dict[str, list[str]]:
    table = [line.split(" | ") for line in reference_markdown().splitlines() if line.startswith("| `")]
    return {cells[0].strip("| `"): cells for cells in table}


def test_nested_sections_show_their_parents_defaults() -> None:
    """pipeline.train/eval/prep/report are StepResources whose defaults the pipeline section sets (a GPU, CPU
    and memory for train and eval), not StepResources' own (no accelerator, no requests)."""
    cfg = load_config(None, {})
    reference = rows()
    keys = [key for key in reference if key.startswith("pipeline.") and key.count(".") == 2]
    assert keys
    for key in keys:
        value = functools.reduce(getattr, key.split("."), cfg)
        assert reference[key][2] == ("" if value is None else f"`{value}`"), key
    assert reference["pipeline.train.accelerator_count"][2] != "`0`"  # the case the generator once got wrong


def test_types_read_as_written() -> None:
    reference = rows()
    assert reference["pipeline.eval_steps"][1] == "list[int] or null"
    assert reference["pipeline.train.tolerations"][1] == "list[Toleration]"
