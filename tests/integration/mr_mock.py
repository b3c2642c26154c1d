"""A Kubeflow Model Registry contract mock on 127.0.0.1: Prism serving the registry's published OpenAPI document
(REST API v1alpha3, commit bd07139), read from ../shared/specs/ beside the repository. No registry server can run
here (Go, with MySQL/PostgreSQL); Prism rejects any request that breaks the document and answers with examples
built from its schemas. Prism's generated examples ignore the document's string patterns (an int_value of
"string", which the client then fails to parse; an id of "string", which the next request's id parameter
then breaks), so the test's copy gives numeric patterns and ids a numeric example; requests are still checked
against the patterns. Prism itself comes from the KFP contract mock's installer (tests/integration/kfp_mock.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
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
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
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
