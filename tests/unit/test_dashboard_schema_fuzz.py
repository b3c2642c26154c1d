"""schemathesis over the dashboard's own OpenAPI document: whatever it sends, the server answers, never 5xx.

Form posts carry a valid CSRF token and session cookie, so the fuzzed values reach the form parser, the retrain
policy and the launcher (the test double) instead of stopping at the CSRF check.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from dashboard_support import RecordingLauncher, csrf_of, sample_data, tiny_config
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from emtune.dashboard.app import create_app
from emtune.dashboard.settings import DashboardSettings

pytest_plugins = ["dashboard_support"]


def make_app() -> Any:
    launcher = RecordingLauncher()
    launcher.add_run("base", tiny_config(), data=sample_data())
    launcher.add_run("live", tiny_config(), status="running", data=sample_data())
    # "testserver" is the ASGI test client's Host; the allow-list still applies to every other name.
    runs_dir = Path(tempfile.mkdtemp(prefix="emtune-fuzz-"))
    return create_app(DashboardSettings(runs_dir=runs_dir, allowed_hosts=["testserver"]), launcher)


APP = make_app()
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
_client = TestClient(APP)
SESSION = {"X-CSRF-Token": csrf_of(_client.get("/").text)}
COOKIES = {"emtune_sid": str(_client.cookies.get("emtune_sid"))}


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case: Any) -> None:
    response = case.call(headers=SESSION, cookies=COOKIES)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
    assert "Traceback" not in response.text
