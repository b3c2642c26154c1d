"""A stand-in for the few Kubernetes API paths emtune's client uses, on 127.0.0.1, recording every request.

No Kubernetes API server runs on these machines; this answers the way the API server does (JSON objects,
label-selected lists, a followed log, 404/409 Status objects) for tests/unit/test_cluster_k8s.py and the RBAC
derivation in tests/chart/test_rbac.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubernetes import client

from emtune.cluster.k8s import KubernetesTrainJobClient

TRAINJOBS = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team/trainjobs"


def pod(name: str, created: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase}}


class Cluster:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.log_lines: list[str] = []
        # Created objects by path; deleting one removes it at once (the API server's foreground deletion ends so).
        self.objects: dict[str, dict[str, Any]] = {}
        self.trainjob_status: dict[str, Any] = {}  # what a TrainJob created here reports (its controller's say)


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

        def _status(self, code: int, reason: str) -> None:
            self._json(code, {"kind": "Status", "status": "Failure", "reason": reason, "code": code})

        def do_POST(self) -> None:
            path, _, body = self._record()
            target = f"{path}/{body['metadata']['name']}"
            if target in cluster.objects:
                self._status(409, "AlreadyExists")
                return
            created = {**body, "metadata": {**body["metadata"], "uid": "uid-42", "resourceVersion": "1"}}
            if path == TRAINJOBS and cluster.trainjob_status:
                created["status"] = cluster.trainjob_status
            cluster.objects[target] = created
            self._json(201, cluster.objects[target])

        def do_PUT(self) -> None:
            path, _, body = self._record()
            if path not in cluster.objects:
                self._status(404, "NotFound")
                return
            cluster.objects[path] = body
            self._json(200, body)

        def do_PATCH(self) -> None:  # a JSON merge patch of `data`, the one kind emtune sends
            path, _, body = self._record()
            if path not in cluster.objects:
                self._status(404, "NotFound")
                return
            current = cluster.objects[path]
            current["data"] = {**(current.get("data") or {}), **body.get("data", {})}
            self._json(200, current)

        def do_GET(self) -> None:
            path, _, _ = self._record()
            if path in cluster.objects:
                self._json(200, cluster.objects[path])
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
                self._status(404, "NotFound")

        def do_DELETE(self) -> None:
            path, _, _ = self._record()
            if cluster.objects.pop(path, None) is None:
                self._status(404, "NotFound")
                return
            self._json(200, {"kind": "Status", "status": "Success"})

    return Handler


@contextlib.contextmanager
def serve() -> Iterator[tuple[Cluster, KubernetesTrainJobClient]]:
    """The stand-in on a free port, and emtune's real client pointed at it (namespace team)."""
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
