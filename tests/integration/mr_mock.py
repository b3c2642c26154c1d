"""A Kubeflow Model Registry contract mock on 127.0.0.1: Prism serving the registry's published OpenAPI document (REST
API v1alpha3, commit bd07139), read from ../shared/specs/ beside the repository. No registry server can run here
(Go, with MySQL/PostgreSQL); Prism rejects any request that breaks the document and answers with examples built from
its schemas. Prism keeps no state, so a thin shim in front of it (`MrMock`) picks, for the registry's find-by-name
lookups, which documented answer Prism gives: 404 until the test's client created that kind of entity, 200 after; it
forwards everything else unchanged and records each request with its body. Prism's generated examples ignore the
document's string patterns (an int_value of "string", which the client then fails to parse; an id of "string", which
the next request's id parameter then breaks), so the test's copy gives numeric patterns and ids a numeric example;
requests are still checked against the patterns. Likewise a `oneOf` with a discriminator (artifacts) becomes
`anyOf`: the server picks by the discriminator, Prism would demand that exactly one kind match. Prism itself comes
from the KFP contract mock's installer (tests/integration/kfp_mock.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_mock import KfpMock, _ensure_prism, _free_port

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO.parent / "shared" / "specs" / "kubeflow-model-registry-bd07139" / "model-registry.yaml"


def _with_examples(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_examples(item) for item in node]
    if not isinstance(node, dict):
        return node
    patched = {key: _with_examples(value) for key, value in node.items()}
    if "oneOf" in patched and "discriminator" in patched:
        # The artifact kinds differ only by their artifactType's default, so a model artifact matches several;
        # the server (openapi-generator's Go models) picks the kind by the discriminator, Prism would refuse.
        patched["anyOf"] = patched.pop("oneOf")
    if "[0-9]" in str(patched.get("pattern", "")) and "example" not in patched:
        patched["example"] = "1"
    for name, prop in (patched.get("properties") or {}).items():  # ids are numbers in text, as the server makes
        if (name == "id" or name.endswith("Id")) and isinstance(prop, dict) and prop.get("type") == "string":
            prop.setdefault("example", "1")
    return patched


@pytest.fixture(scope="session")
def mr_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KfpMock]:
    if not SPEC.is_file():
        pytest.fail(f"{SPEC} is missing: the registry's API document is read from ../shared/specs")
    prism = _ensure_prism()
    folder = tmp_path_factory.mktemp("mr-mock")
    spec = folder / "model-registry.json"
    spec.write_text(json.dumps(_with_examples(yaml.safe_load(SPEC.read_text(encoding="utf-8")))), encoding="utf-8")
    port = _free_port()
    log_path = folder / "prism.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [str(prism), "mock", "--host", "127.0.0.1", "--port", str(port), "--errors", str(spec)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Prism did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.3)
        yield KfpMock(f"http://127.0.0.1:{port}", log_path)
    finally:
        process.terminate()
        process.wait(timeout=10)


API = "/api/model_registry/v1alpha3"
# Find-by-name lookups, and the creation that makes each of them find something.
FINDS = {f"{API}/registered_model": f"{API}/registered_models", f"{API}/model_version": f"{API}/model_versions"}


@dataclass
class MrMock:
    url: str
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, path, JSON body)
    created: set[str] = field(default_factory=set)  # find paths that now find something


def _shim(prism: str, state: MrMock) -> type[BaseHTTPRequestHandler]:
    class Shim(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            path = self.path.split("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            state.requests.append((self.command, path, json.loads(body) if body else None))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            if self.command == "GET" and path in FINDS and path not in state.created:
                headers["Prefer"] = "code=404"  # nothing of this kind registered yet
            request = urllib.request.Request(prism + self.path, data=body, headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, payload, kind = response.status, response.read(), response.headers.get("Content-Type")
            except urllib.error.HTTPError as error:
                status, payload, kind = error.code, error.read(), error.headers.get("Content-Type")
            if self.command == "POST" and status < 300:
                state.created |= {find for find, made in FINDS.items() if path == made}
            self.send_response(status)
            self.send_header("Content-Type", kind or "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _forward

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the requests are recorded
            pass

    return Shim


@pytest.fixture
def mr_registry(mr_mock: KfpMock) -> Iterator[MrMock]:
    """An empty registry (as far as lookups go) in front of the contract mock, for one test."""
    state = MrMock("")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _shim(mr_mock.url, state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
