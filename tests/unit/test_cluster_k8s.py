"""The Kubernetes client layer (`emtune.cluster.k8s`): the real `kubernetes` client against an HTTP stand-in
(tests/k8s_standin.py) that records every request: the tests check the requests the client sends and how it
reads the answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from k8s_standin import TRAINJOBS, Cluster, pod, serve

from emtune.cluster.k8s import KubernetesTrainJobClient, current_namespace
from emtune.cluster.launcher import PodInfo


@pytest.fixture
def cluster() -> Iterator[tuple[Cluster, KubernetesTrainJobClient]]:
    with serve() as running:
        yield running


def test_create_get_and_delete_a_trainjob(cluster: tuple[Cluster, KubernetesTrainJobClient]) -> None:
    state, k8s = cluster
    body = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "emtune-run"}}
    created = k8s.create_trainjob(body)
    assert created["metadata"]["uid"] == "uid-42"
    assert k8s.get_trainjob("emtune-run")["kind"] == "TrainJob"
    k8s.create_config_map({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "emtune-run-inputs"}})
    k8s.delete_trainjob("emtune-run")
    calls = [(method, path) for method, path, _, _ in state.requests]
    assert calls == [
        ("POST", TRAINJOBS),
        ("GET", f"{TRAINJOBS}/emtune-run"),
        ("POST", "/api/v1/namespaces/team/configmaps"),
        ("DELETE", f"{TRAINJOBS}/emtune-run"),
    ]
    assert state.requests[0][3] == body
    # Foreground: the job's pods and its inputs ConfigMap go before the job itself does.
    assert state.requests[-1][3]["propagationPolicy"] == "Foreground"


def test_node0_pod_selects_by_jobset_labels_and_takes_the_newest(
    cluster: tuple[Cluster, KubernetesTrainJobClient],
) -> None:
    state, k8s = cluster
    assert k8s.node0_pod("emtune-run") is None
    state.pods = [
        pod("emtune-run-node-0-0-old", "2026-11-27T07:00:00Z", "Failed"),
        pod("emtune-run-node-0-0-new", "2026-11-27T07:05:00Z", "Running"),  # the restarted node 0
    ]
    assert k8s.node0_pod("emtune-run") == PodInfo("emtune-run-node-0-0-new", "Running")
    selector = state.requests[-1][2]["labelSelector"][0].split(",")
    assert sorted(selector) == [
        "batch.kubernetes.io/job-completion-index=0",
        "jobset.sigs.k8s.io/job-index=0",
        "jobset.sigs.k8s.io/jobset-name=emtune-run",
        "jobset.sigs.k8s.io/replicatedjob-name=node",
    ]


def test_stream_logs_follows_the_trainer_container(cluster: tuple[Cluster, KubernetesTrainJobClient]) -> None:
    state, k8s = cluster
    state.log_lines = ["step 1 loss 0.9", "step 2 loss 0.7"]
    assert list(k8s.stream_logs("emtune-run-node-0-0-new")) == state.log_lines
    method, path, query, _ = state.requests[-1]
    assert (method, path) == ("GET", "/api/v1/namespaces/team/pods/emtune-run-node-0-0-new/log")
    # The Python client writes booleans as "True"; the API server parses that like "true".
    assert query["container"] == ["node"] and query["follow"][0].lower() == "true"


def test_current_namespace_reads_the_service_account(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from emtune.cluster import k8s

    monkeypatch.setattr(k8s, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    assert current_namespace() == "default"
    (tmp_path / "namespace").write_text("team-a\n", encoding="utf-8")
    assert current_namespace() == "team-a"


def test_a_retried_step_replaces_the_previous_attempts_trainjob_and_config_map(
    cluster: tuple[Cluster, KubernetesTrainJobClient],
) -> None:
    """A KFP retry reruns the launcher with the same run id: the old job and inputs exist (409 on create)."""
    from emtune.cluster.launcher import LaunchSettings, TrainJobLauncher
    from emtune.cluster.trainjob import build_inputs_config_map, build_trainjob
    from emtune.config import load_config

    state, k8s = cluster
    cfg = load_config(None, {"train.nodes": 2, "store.uri": "s3://bucket/runs"})
    job = build_trainjob(cfg, name="emtune-run1", namespace="team", config_map="emtune-run1-inputs")

    def inputs(uid: str) -> Any:
        return build_inputs_config_map(
            cfg, b"PAR1", name="emtune-run1-inputs", namespace="team", owner=job, owner_uid=uid
        )

    old_job = {"metadata": {"name": "emtune-run1", "uid": "uid-old"}, "status": {"conditions": []}}
    state.objects[f"{TRAINJOBS}/emtune-run1"] = old_job
    state.objects["/api/v1/namespaces/team/configmaps/emtune-run1-inputs"] = {"metadata": {"uid": "cm-old"}}
    state.trainjob_status = {"conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted"}]}
    state.pods = [pod("emtune-run1-node-0-0-a", "2026-11-27T07:00:00Z", "Succeeded")]
    TrainJobLauncher(k8s, LaunchSettings(poll_s=0.01, drain_s=1.0), emit=lambda line: None).run(job, inputs)
    calls = [(method, path.rsplit("/", 1)[-1]) for method, path, _, _ in state.requests[:7]]
    assert calls == [
        ("POST", "trainjobs"),  # 409: the previous attempt's
        ("DELETE", "emtune-run1"),
        ("GET", "emtune-run1"),  # 404: gone
        ("POST", "trainjobs"),
        ("POST", "configmaps"),  # 409: left behind
        ("PUT", "emtune-run1-inputs"),
        ("GET", "emtune-run1"),
    ]
    replaced = state.objects["/api/v1/namespaces/team/configmaps/emtune-run1-inputs"]
    assert replaced["metadata"]["ownerReferences"][0]["uid"] == "uid-42"  # the new job owns the inputs
