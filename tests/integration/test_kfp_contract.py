"""`emtune pipeline submit` and `sync` with the real kfp.Client against KFP 2.17.0's published API (Prism).

Prism rejects (4xx) any request whose path, method, parameters, body or auth break the v2beta1 document, and
the client raises on those; so a command that completes made only calls the real API server accepts.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from common import alias_workflows, run_cli

if TYPE_CHECKING:
    from kfp_mock import KfpMock

pytest_plugins = ["kfp_mock"]

alias_workflows()

RUN = {"store": {"uri": "s3://ckpts/emtune"}, "eval": {"benchmarks": ["demo-arith"]}}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMTUNE_KFP_TOKEN", "contract-test-token")  # the document requires a bearer token
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(RUN), encoding="utf-8")
    return path


def new_requests(mock: KfpMock, before: int) -> list[str]:
    return [line.split("?")[0] for line in mock.requests()[before:]]


def test_sync_speaks_the_kfp_api(
    kfp_mock: KfpMock, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text(
        yaml.safe_dump(
            {
                "service_account": "emtune-runner",
                "schedules": [
                    {"name": "nightly", "cron": "0 3 * * *", "set": {"train.max_steps": 10}},
                    {"name": "weekly", "cron": "0 0 4 * * 0", "enabled": False},
                ],
            }
        ),
        encoding="utf-8",
    )
    before = len(kfp_mock.requests())
    argv = ["pipeline", "sync", "--host", kfp_mock.url, "--experiment", "emtune", "--config", str(config)]
    code, out, err = run_cli([*argv, "--schedules", str(schedules)], capsys)
    assert code == 0, err
    # The mock answers every lookup with one schema-built object (named "string"): the pipeline exists, our
    # version does not, the experiment exists, and its one recurring run is not one sync created.
    assert new_requests(kfp_mock, before) == [
        "GET /apis/v2beta1/healthz",  # emtune waits for the server to answer (a hook may start before KFP)
        "GET /apis/v2beta1/healthz",  # kfp.Client checks the server first
        "GET /apis/v2beta1/pipelines",
        "GET /apis/v2beta1/pipelines/string/versions",
        "POST /apis/v2beta1/pipelines/upload_version",
        "GET /apis/v2beta1/experiments",
        "GET /apis/v2beta1/recurringruns",
        "GET /apis/v2beta1/recurringruns",  # followed the page token (once: the mock repeats it)
        "POST /apis/v2beta1/recurringruns",
        "POST /apis/v2beta1/recurringruns",
    ]
    assert "uploaded" in out and "schedules created: nightly, weekly" in out


@pytest.mark.usefixtures("config")  # its bearer token
def test_unschedule_speaks_the_kfp_api(kfp_mock: KfpMock, capsys: pytest.CaptureFixture[str]) -> None:
    before = len(kfp_mock.requests())
    argv = ["pipeline", "unschedule", "--host", kfp_mock.url, "--experiment", "emtune"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    # The experiment exists; its one recurring run (the mock's) is not one sync created: nothing is deleted.
    assert new_requests(kfp_mock, before) == [
        "GET /apis/v2beta1/healthz",
        "GET /apis/v2beta1/healthz",
        "GET /apis/v2beta1/experiments",
        "GET /apis/v2beta1/recurringruns",
        "GET /apis/v2beta1/recurringruns",
    ]
    assert out.strip() == "no schedules to delete"


def test_submit_speaks_the_kfp_api(kfp_mock: KfpMock, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = len(kfp_mock.requests())
    code, out, err = run_cli(["pipeline", "submit", "--host", kfp_mock.url, "--config", str(config)], capsys)
    assert code == 0, err
    assert out.strip().endswith(f"{kfp_mock.url}/#/runs/details/string")
    assert new_requests(kfp_mock, before)[-1] == "POST /apis/v2beta1/runs"
    before = len(kfp_mock.requests())
    argv = ["pipeline", "submit", "--host", kfp_mock.url, "--config", str(config), "--recurring", "0 3 * * *"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert new_requests(kfp_mock, before)[-1] == "POST /apis/v2beta1/recurringruns"


def test_the_mock_rejects_what_breaks_the_contract(kfp_mock: KfpMock) -> None:
    """The check is not vacuous: no token, a wrongly typed body and an unknown path all fail."""

    def status(path: str, body: object | None = None, token: bool = True) -> int:
        request = urllib.request.Request(
            kfp_mock.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **({"Authorization": "Bearer t"} if token else {})},
            method="GET" if body is None else "POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    assert status("/apis/v2beta1/experiments") == 200
    assert status("/apis/v2beta1/experiments", token=False) == 401
    assert status("/apis/v2beta1/recurringruns", {"display_name": "x", "no_catchup": "sometimes"}) >= 400
    assert status("/apis/v2beta1/no-such-thing") == 404
