"""Dashboard auth modes (token, proxy, none), the settings it refuses, and the CLI's exit code for them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_support import BASE_URL, RecordingLauncher, csrf_of, sample_data, tiny_config
from fastapi.testclient import TestClient

from emtune.dashboard.app import create_app
from emtune.dashboard.settings import DashboardSettings
from emtune.errors import ConfigError

pytest_plugins = ["dashboard_support"]

TOKEN = "tok-0123456789abcdef-secret"


def make_client(tmp_path: Path, client_host: str = "testclient", **settings: object) -> TestClient:
    double = RecordingLauncher()
    double.add_run("base", tiny_config(), data=sample_data())
    app = create_app(DashboardSettings(runs_dir=tmp_path, **settings), double)  # type: ignore[arg-type]
    return TestClient(app, client=(client_host, 50000), base_url=BASE_URL)


@pytest.fixture
def token_client(tmp_path: Path) -> TestClient:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return make_client(tmp_path, host="0.0.0.0", auth="token", token_file=token_file)


def test_token_mode_refuses_every_route_but_health_without_the_token(token_client: TestClient) -> None:
    for path in ("/", "/runs/base", "/api/runs", "/schedules", "/static/htmx.min.js", "/compare?run=a&run=b"):
        response = token_client.get(path)
        assert response.status_code == 401, path
        assert TOKEN not in response.text
    assert token_client.get("/api/runs", headers={"Authorization": "Bearer wrong-token-000000"}).status_code == 401
    assert token_client.get("/healthz").status_code == 200 and token_client.get("/readyz").status_code == 200


def test_token_mode_accepts_the_bearer_token_and_a_login_session(token_client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert token_client.get("/api/runs", headers=headers).status_code == 200
    login_csrf = csrf_of(token_client.get("/login").text)
    assert token_client.post("/login", data={"token": "nope", "csrf_token": login_csrf}).status_code == 401
    assert token_client.post("/login", data={"token": TOKEN}).status_code == 403  # no CSRF token
    signed_in = token_client.post("/login", data={"token": TOKEN, "csrf_token": login_csrf}, follow_redirects=False)
    assert signed_in.status_code == 303
    cookie = signed_in.cookies.get("emtune_session")
    assert cookie and TOKEN not in cookie  # the session cookie is derived from the token, not the token
    page = token_client.get("/runs/base")
    assert page.status_code == 200 and TOKEN not in page.text


def test_proxy_mode_trusts_the_user_header_only_from_the_proxy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"host": "0.0.0.0", "auth": "proxy", "trusted_proxies": ["10.1.0.0/16"]}
    via_proxy = make_client(tmp_path, "10.1.2.3", **settings)
    assert via_proxy.get("/api/runs", headers={"X-Forwarded-User": "bob@example.com"}).status_code == 200
    assert via_proxy.get("/api/runs").status_code == 401  # the proxy sent no identity
    direct = make_client(tmp_path, "192.168.5.5", **settings)
    assert direct.get("/api/runs", headers={"X-Forwarded-User": "mallory"}).status_code == 401
    with caplog.at_level(logging.INFO, logger="emtune.dashboard.audit"):
        token = csrf_of(via_proxy.get("/", headers={"X-Forwarded-User": "bob@example.com"}).text)
        via_proxy.post(
            "/runs/base/retrain",
            data={"csrf_token": token, "idempotency_key": "p", "train.max_steps": "3"},
            headers={"X-Forwarded-User": "bob@example.com"},
        )
    assert any("user=bob@example.com action=start" in r.getMessage() for r in caplog.records)


def test_proxy_mode_custom_header(tmp_path: Path) -> None:
    client = make_client(
        tmp_path, "127.0.0.1", auth="proxy", trusted_proxies=["127.0.0.1/32"], proxy_user_header="X-Auth-Request-Email"
    )
    assert client.get("/api/runs", headers={"X-Forwarded-User": "eve"}).status_code == 401
    assert client.get("/api/runs", headers={"X-Auth-Request-Email": "ann@example.com"}).status_code == 200


def test_none_mode_needs_nothing_on_loopback(tmp_path: Path) -> None:
    assert make_client(tmp_path).get("/api/runs").status_code == 200


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"host": "0.0.0.0"}, "--host '0.0.0.0' with --auth none"),
        ({"auth": "token"}, "--auth token needs --token-file"),
        ({"auth": "token", "token_file": Path("/nonexistent/token")}, "cannot be read"),
        ({"auth": "proxy"}, "--auth proxy needs --trusted-proxies"),
        ({"auth": "proxy", "trusted_proxies": ["not-a-cidr"]}, "'not-a-cidr' is not an IP network"),
        ({"auth": "basic"}, "--auth 'basic' is not allowed"),
        ({"launcher": "kfp"}, "--launcher kfp needs --kfp-host"),
    ],
)
def test_unsafe_or_incomplete_settings_are_refused(tmp_path: Path, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        DashboardSettings(runs_dir=tmp_path, **settings).check()


def test_short_token_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("short")
    with pytest.raises(ConfigError, match="use at least 16"):
        DashboardSettings(auth="token", token_file=tmp_path / "token").check()


def test_cli_refuses_none_auth_on_a_public_address(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "emtune", "dashboard", "--runs-dir", str(tmp_path), "--host", "0.0.0.0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--auth none" in done.stderr and "Traceback" not in done.stderr
    # The same setting from the environment (how the chart configures the image).
    env_command = [sys.executable, "-m", "emtune", "dashboard", "--runs-dir", str(tmp_path)]
    env = {**os.environ, "EMTUNE_DASHBOARD_HOST": "10.0.0.5", "EMTUNE_DASHBOARD_AUTH": "none"}
    done = subprocess.run(env_command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "'10.0.0.5'" in done.stderr


def test_proxy_mode_behind_kubeflows_istio_gateway(tmp_path: Path) -> None:
    """What the chart's kubeflowGateway renders: the sidecar (127.0.0.6) forwards kubeflow-userid and the
    gateway's host name."""
    settings = {"host": "0.0.0.0", "auth": "proxy", "trusted_proxies": ["127.0.0.6/32"],
                "proxy_user_header": "kubeflow-userid", "allowed_hosts": ["kubeflow.example.com"]}  # fmt: skip
    via_sidecar = make_client(tmp_path, "127.0.0.6", **settings)
    headers = {"kubeflow-userid": "ann@example.com", "host": "kubeflow.example.com"}
    assert via_sidecar.get("/api/runs", headers=headers).status_code == 200
    assert "ann@example.com" in via_sidecar.get("/", headers=headers).text
    assert via_sidecar.get("/api/runs", headers={**headers, "host": "10.0.3.4:8080"}).status_code == 421
    from_a_pod = make_client(tmp_path, "10.0.3.9", **settings)  # another pod reaching the Service directly
    assert from_a_pod.get("/api/runs", headers=headers).status_code == 401
