"""The Kubernetes client layer (`emtune.cluster.k8s`): the real `kubernetes` client against an HTTP stand-in.

No Kubernetes API server runs on these machines, so a small server on 127.0.0.1 answers the few paths the
client uses the way the API server does (JSON objects, label-selected lists, a followed log) and records every
request: the tests check the requests the client sends and how it reads the answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from emtune.cluster.k8s import KubernetesTrainJobClient, current_namespace
from emtune.cluster.launcher import PodInfo

TRAINJOBS = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team/trainjobs"


def pod(name: str, created: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase}}


class Cluster:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.log_lines: list[str] = []


def handler_for(cluster: Cluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _record(self) -> tuple[str, dict[str, list[str]], Any]:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            query = parse_qs(url.query)
            cluster.requests.append((self.command, url.path, query, body))
            return url.path, query, body

        def _json(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            _, _, body = self._record()
            self._json(201, {**body, "metadata": {**body["metadata"], "uid": "uid-42", "resourceVersion": "1"}})

        def do_GET(self) -> None:
            path, _, _ = self._record()
            if path == f"{TRAINJOBS}/emtune-run":
                self._json(200, {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "status": {}})
            elif path == "/api/v1/namespaces/team/pods":
                self._json(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": cluster.pods})
            elif path.endswith("/log"):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                for line in cluster.log_lines:  # as a followed log arrives: line by line
                    self.wfile.write(f"{line}\n".encode())
                    self.wfile.flush()
            else:
                self._json(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})

        def do_DELETE(self) -> None:
            self._record()
            self._json(200, {"kind": "Status", "status": "Success"})

    return Handler


@pytest.fixture
def cluster() -> Iterator[tuple[Cluster, KubernetesTrainJobClient]]:
    state = Cluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield state, KubernetesTrainJobClient("team", api_client=client.ApiClient(config))
    finally:
        server.shutdown()
        server.server_close()


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
