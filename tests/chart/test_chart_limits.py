"""What the API server and helm enforce beyond the schemas: name lengths, the cluster version, routes."""

from __future__ import annotations

import yaml
from chart_render import CHART, NAMESPACE, VALUE_SETS, helm, values_file

# The longest release name helm accepts.
LONG_RELEASE = "a-release-name-that-is-very-long-indeed-more-than-fif"


def test_names_fit_kubernetes_limits_for_the_longest_release_name() -> None:
    assert len(LONG_RELEASE) == 53
    for value_set in VALUE_SETS:
        result = helm("template", LONG_RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(values_file(value_set)))
        assert result.returncode == 0, result.stderr
        objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        names = [(o["kind"], o["metadata"]["name"]) for o in objects]
        assert all(len(name) <= 63 for _, name in names), [n for n in names if len(n[1]) > 63]
        assert len(set(names)) == len(names)  # shortened, still distinct
        for obj in objects:
            labels = obj["metadata"].get("labels", {})
            assert all(len(v) <= 63 for v in labels.values()), (obj["kind"], labels)
            if obj["kind"] == "Job":  # its pods carry job-name=<name>, a label value
                assert obj["metadata"]["name"].endswith(("-registration", "-unschedule"))


def test_chart_needs_the_kubernetes_trainer_v2_3_needs() -> None:
    assert yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["kubeVersion"] == ">=1.31.0-0"
    old = helm("template", "emtune", str(CHART), "-n", NAMESPACE, "--kube-version", "1.30.0")
    assert old.returncode != 0 and "kubeVersion" in old.stderr, old.stderr
    assert helm("template", "emtune", str(CHART), "-n", NAMESPACE, "--kube-version", "1.31.0").returncode == 0


def test_an_http_route_needs_a_parent() -> None:
    bare = helm("template", "emtune", str(CHART), "-n", NAMESPACE, "--set", "dashboard.httpRoute.enabled=true")
    assert bare.returncode != 0 and "parentRefs" in bare.stderr, bare.stderr
    empty = helm(
        "template",
        "emtune",
        str(CHART),
        "-n",
        NAMESPACE,
        "--set",
        "dashboard.httpRoute.enabled=true",
        "--set-json",
        "dashboard.httpRoute.parentRefs=[]",
    )
    assert empty.returncode != 0 and "parentRefs" in empty.stderr, empty.stderr
    given = helm(
        "template",
        "emtune",
        str(CHART),
        "-n",
        NAMESPACE,
        "--set",
        "dashboard.httpRoute.enabled=true",
        "--set-json",
        'dashboard.httpRoute.parentRefs=[{"name":"gw","namespace":"gateways"}]',
    )
    assert given.returncode == 0, given.stderr


def test_kfp_ui_link_is_not_the_api_host() -> None:
    from chart_render import render

    (deployment,) = [o for o in render("default") if o["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EMTUNE_KFP_UI_URL"] == "http://ml-pipeline-ui.kubeflow" != env["EMTUNE_KFP_HOST"]
