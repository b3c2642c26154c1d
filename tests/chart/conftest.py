"""Chart tests: every test taking `value_set` runs once per value set in helm/emtune/ci/."""

from __future__ import annotations

import pytest
from chart_render import VALUE_SETS


@pytest.fixture(params=VALUE_SETS)
def value_set(request: pytest.FixtureRequest) -> str:
    return request.param
