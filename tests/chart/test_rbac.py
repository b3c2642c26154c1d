"""The chart's RBAC equals what its accounts call: KFP's own runtime calls in a pipeline pod (checked against
KFP 2.17's pipeline-runner Role) plus emtune's TrainJob launch (recorded from the real client), no more.

KFP's API calls (registration hook, dashboard) are authorised by KFP itself in Kubeflow profiles, through the
kubeflow-pipelines-edit ClusterRole; the calls emtune makes must be among what that role aggregates.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml
from chart_render import NAMESPACE, render
from k8s_standin import TRAINJOBS, pod, serve

from emtune.cluster.launcher import AlreadyExists, NotFound, TrainJobClient

KFP_SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "kubeflow-pipelines-2.17.0"
if not KFP_SPECS.is_dir():  # the worktree's ../shared, or the main checkout's
    KFP_SPECS = Path("/work/shared/specs/kubeflow-pipelines-2.17.0")

# (API group, resource, verb, resource name or "*").
Grant = tuple[str, str, str, str]

# What KFP 2.17's own processes call as the pipeline pod's account (kubeflow/pipelines at 2.17.0):
KFP_RUNTIME: set[Grant] = {
    ("", "configmaps", "get", "kfp-launcher"),  # backend/src/v2/config/env.go: the launcher settings
    ("", "secrets", "get", "*"),  # backend/src/v2/objectstore/object_store.go: artifact store credentials
    ("", "pods", "get", "*"),  # driver/k8s.go, component/launcher_v2.go: its own pod
    ("argoproj.io", "workflows", "get", "*"),  # cmd/driver/main.go: the run's Workflow metadata
    ("argoproj.io", "workflowtaskresults", "create", "*"),  # Argo's executor: a step's outputs
    ("argoproj.io", "workflowtaskresults", "patch", "*"),
}

# emtune.runs.sync and the dashboard through kfp.Client, as KFP's API server authorises them (multi-user).
KFP_API_CALLS: set[tuple[str, str]] = {
    ("pipelines", "create"),  # upload_pipeline
    ("pipelines", "get"),  # get_pipeline_id
    ("pipelines", "list"),
    ("pipelineversions", "create"),  # upload_pipeline_version
    ("pipelineversions", "list"),
    ("experiments", "create"),
    ("experiments", "get"),
    ("runs", "create"),  # dashboard: run_pipeline
    ("runs", "get"),
    ("runs", "list"),
    ("jobs", "create"),  # recurring runs
    ("jobs", "list"),
    ("jobs", "delete"),
    ("jobs", "disable"),
    ("jobs", "enable"),
}


def grants(rules: Iterable[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb, name)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
        for name in rule.get("resourceNames", ["*"])
    }


def allows(granted: set[Grant], need: Grant) -> bool:
    group, resource, verb, name = need
    return any(g == group and r in (resource, "*") and v in (verb, "*") and n in (name, "*") for g, r, v, n in granted)


def kfp_rules(path: str, name: str | None = None) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((KFP_SPECS / path).read_text(encoding="utf-8")) if d]
    return [rule for d in docs if name is None or d["metadata"]["name"] == name for rule in d.get("rules") or []]


def rbac_of(request: tuple[str, str, dict[str, list[str]], Any]) -> Grant:
    """The RBAC (group, resource, verb, name) the API server checks for one request (its request-info rules)."""
    method, path, query, _ = request
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    assert rest[0] == "namespaces", path
    resource, name, sub = rest[2], (rest[3] if len(rest) > 3 else ""), (rest[4] if len(rest) > 4 else "")
    watch = parse_qs("&".join(f"{k}={v[0]}" for k, v in query.items())).get("watch", ["false"])[0].lower() == "true"
    if method == "GET":
        verb = "watch" if watch else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return group, f"{resource}/{sub}" if sub else resource, verb, "*"


def emtune_calls() -> set[Grant]:
    """Every TrainJobClient method of the real client, driven against the API stand-in, as RBAC grants."""
    job = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "emtune-r"}}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "emtune-r-inputs"}}
    calls = {
        "create_trainjob": (job,),
        "create_config_map": (config_map,),
        "replace_config_map": (config_map,),
        "get_trainjob": ("emtune-r",),
        "node0_pod": ("emtune-r",),
        "stream_logs": ("emtune-r-node-0-0",),
        "delete_trainjob": ("emtune-r",),
    }
    protocol = {name for name, _ in inspect.getmembers(TrainJobClient, inspect.isfunction) if not name.startswith("_")}
    assert set(calls) == protocol, "a TrainJobClient method this derivation does not drive"
    with serve() as (state, k8s):
        state.pods = [pod("emtune-r-node-0-0", "2026-11-27T07:00:00Z", "Running")]
        for method, args in calls.items():
            result = getattr(k8s, method)(*args)
            if method == "stream_logs":
                list(result)
            if method == "create_trainjob":
                with pytest.raises(AlreadyExists):  # a retried step's first try
                    k8s.create_trainjob(job)
        with pytest.raises(NotFound):
            k8s.get_trainjob("emtune-r")  # deleted above
        assert any(path == TRAINJOBS for _, path, _, _ in state.requests)
        return {rbac_of(request) for request in state.requests}


def registration_calls() -> set[Grant]:
    """The registration hook's one Kubernetes call (recording the registered version), as RBAC grants."""
    from kubernetes import client

    from emtune.cluster.k8s import record_in_config_map

    with serve() as (state, k8s):
        state.objects["/api/v1/namespaces/team/configmaps/emtune-registered"] = {"metadata": {}, "data": {}}
        record_in_config_map("team", "emtune-registered", "version.json", "{}", api_client=k8s.core.api_client)
        assert state.objects["/api/v1/namespaces/team/configmaps/emtune-registered"]["data"] == {"version.json": "{}"}
        assert isinstance(k8s.core, client.CoreV1Api)
        return {(*rbac_of(r)[:3], "emtune-registered") for r in state.requests}


def roles(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Role"}


def runner_role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return roles(objects)["emtune-runner"]


def test_kfp_runtime_calls_are_kfps_own_runner_grants() -> None:
    """Derived from KFP's pipeline-runner Role: everything listed there that KFP's processes use, nothing else."""
    runner = grants(kfp_rules("pipeline-runner-role.yaml", "pipeline-runner"))
    assert all(allows(runner, need) for need in KFP_RUNTIME)


def test_kfp_api_calls_are_within_kubeflow_pipelines_edit() -> None:
    rules = kfp_rules("view-edit-cluster-roles.yaml")
    edit_and_view = grants(r for r in rules if any("pipelines.kubeflow.org" in g for g in r.get("apiGroups", [])))
    missing = {c for c in KFP_API_CALLS if not allows(edit_and_view, ("pipelines.kubeflow.org", *c, "*"))}
    assert not missing


def test_rendered_runner_role_is_exactly_what_is_called(value_set: str) -> None:
    objects = render(value_set)
    assert set(roles(objects)) == {"emtune-runner", "emtune-registration"}  # the dashboard needs none
    assert grants(runner_role(objects)["rules"]) == KFP_RUNTIME | emtune_calls()
    assert grants(roles(objects)["emtune-registration"]["rules"]) == registration_calls()
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def accounts_roles(objects: list[dict[str, Any]], account: str) -> set[Grant]:
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Role"}
    found: set[Grant] = set()
    for binding in (o for o in objects if o["kind"] == "RoleBinding" and o["roleRef"]["kind"] == "Role"):
        if any(s["name"] == account and s["namespace"] == NAMESPACE for s in binding["subjects"]):
            found |= grants(roles[binding["roleRef"]["name"]]["rules"])
    return found


@pytest.mark.parametrize(
    ("value_set", "kfp_default"), [("default", "pipeline-runner"), ("multi-user", "default-editor")]
)
def test_default_accounts_can_launch_a_trainjob_and_read_kfp_launcher(value_set: str, kfp_default: str) -> None:
    """A recurring run runs as the chart's runner account; `submit` and dashboard runs set none, so KFP runs them
    as its default runner account. Both can launch a multi-node run with the default values."""
    objects = render(value_set)
    (hook_config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "emtune-registration"]
    scheduled = yaml.safe_load(hook_config["data"]["schedules.yaml"])["service_account"]
    for account in (scheduled, kfp_default):
        granted = accounts_roles(objects, account)
        assert allows(granted, ("trainer.kubeflow.org", "trainjobs", "create", "*")), account
        assert allows(granted, ("", "configmaps", "get", "kfp-launcher")), account


def test_bind_service_accounts_replaces_kfps_default() -> None:
    def runner_subjects(*extra: str) -> list[str]:
        objects = render("default", *extra)
        (binding,) = [o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "emtune-runner"]
        return [s["name"] for s in binding["subjects"]]

    assert runner_subjects() == ["emtune-runner", "pipeline-runner"]
    assert runner_subjects("--set-json", 'runner.bindServiceAccounts=["team-runner"]') == [
        "emtune-runner",
        "team-runner",
    ]
    assert runner_subjects("--set-json", "runner.bindServiceAccounts=[]") == ["emtune-runner"]


def test_only_pods_that_call_kubernetes_mount_a_token(value_set: str) -> None:
    """The dashboard and the pre-delete hook call KFP only: no Kubernetes token of theirs to steal. Pipeline
    pods and the sync hook (its record of the version) get one."""
    objects = render(value_set)
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    assert {name: sa["automountServiceAccountToken"] for name, sa in accounts.items()} == {
        "emtune-runner": True,
        "emtune-dashboard": False,
        "emtune-registration": False,
    }
    mounted = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["automountServiceAccountToken"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }
    assert mounted == {"emtune-dashboard": False, "emtune-registration": True, "emtune-unschedule": False}
    kfp_edit = [o for o in objects if o["kind"] == "RoleBinding" and o["roleRef"]["name"] == "kubeflow-pipelines-edit"]
    assert {b["subjects"][0]["name"] for b in kfp_edit} == (
        {"emtune-dashboard", "emtune-registration"} if value_set == "multi-user" else set()
    )
