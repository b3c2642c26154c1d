"""The chart's dashboard settings: the trust boundary's values reach the container as the CLI reads them, and
what would leave the dashboard open is refused at install time (values.schema.json)."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import CHART, helm, render


def dashboard_env(*extra: str, value_set: str = "default") -> dict[str, str]:
    (deployment,) = [o for o in render(value_set, *extra) if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def probes(*extra: str) -> list[dict[str, Any]]:
    (deployment,) = [o for o in render("default", *extra) if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [container[name] for name in ("livenessProbe", "readinessProbe", "startupProbe")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "dashboard.auth=proxy"], "trustedProxies"),
        (["--set", "dashboard.auth=proxy", "--set", "dashboard.trustedProxies="], "trustedProxies"),
        (["--set", "dashboard.kubeflowGateway=true"], "/dashboard/auth"),
        (["--set", "dashboard.allowedHosts[0]=evil.example/x"], "allowedHosts"),
        (["--set", "dashboard.sessionHours=0"], "sessionHours"),
    ],
)
def test_unsafe_dashboard_values_fail_at_install(args: list[str], message: str) -> None:
    result = helm("template", "emtune", str(CHART), *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_allowed_hosts_hold_the_service_names_the_ingress_host_and_extra_names() -> None:
    env = dashboard_env(value_set="existing-secrets")  # ingress emtune.team.example.com with TLS
    hosts = env["EMTUNE_DASHBOARD_ALLOWED_HOSTS"].split(",")
    assert hosts == [
        "emtune-dashboard",
        "emtune-dashboard.team",
        "emtune-dashboard.team.svc",
        "emtune.team.example.com",
    ]
    assert env["EMTUNE_DASHBOARD_SECURE_COOKIES"] == "true"  # TLS at the ingress
    env = dashboard_env(
        *("--set", "dashboard.allowedHosts[0]=ml.example.com"),
        *("--set", "dashboard.retrainAllow[0]=logging.*"),
        *("--set", "dashboard.pathPrefixes[0]=s3://team/data"),
    )
    assert env["EMTUNE_DASHBOARD_ALLOWED_HOSTS"].endswith(",ml.example.com")
    assert env["EMTUNE_DASHBOARD_RETRAIN_ALLOW"] == "logging.*"
    assert env["EMTUNE_DASHBOARD_PATH_PREFIXES"] == "s3://team/data"
    assert env["EMTUNE_DASHBOARD_SECURE_COOKIES"] == "false"


def test_the_probes_name_a_host_the_dashboard_allows() -> None:
    for probe in probes():
        assert probe["httpGet"]["httpHeaders"] == [{"name": "Host", "value": "localhost"}]


def test_kubeflow_gateway_trusts_the_istio_sidecar_and_its_user_header() -> None:
    env = dashboard_env("--set", "dashboard.auth=proxy", "--set", "dashboard.kubeflowGateway=true")
    assert env["EMTUNE_DASHBOARD_PROXY_USER_HEADER"] == "kubeflow-userid"
    assert env["EMTUNE_DASHBOARD_TRUSTED_PROXIES"] == "127.0.0.6/32"
