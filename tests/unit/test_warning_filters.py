"""pytest's warning filters (pyproject.toml) hide deprecations raised inside third-party modules only: one
attributed to emtune's own code is still shown."""

from __future__ import annotations

import warnings

import pytest
from _pytest.config import parse_warning_filter


def shown(entries: list[str], module: str, category: type[Warning]) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        for entry in entries:  # pytest applies them in order: the last match wins
            warnings.filterwarnings(*parse_warning_filter(entry, escape=False))
        warnings.warn_explicit("old API", category, "somewhere.py", 1, module=module, registry={})
    return bool(caught)


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_third_party_deprecations_are_hidden_and_emtunes_are_shown(
    pytestconfig: pytest.Config, category: type[Warning]
) -> None:
    entries = pytestconfig.getini("filterwarnings")
    assert not shown(entries, "kfp.dsl.pipeline_task", category) and not shown(entries, "transformers.utils", category)
    assert shown(entries, "emtune.train.trainer", category) and shown(entries, "components.train", category)
