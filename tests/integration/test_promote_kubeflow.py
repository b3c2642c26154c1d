"""Promotion into Kubeflow Model Registry with its real `model-registry` client against a contract mock of the
registry's published v1alpha3 API (Prism; tests/integration/mr_mock.py): every request the client makes must be
one the document allows, or Prism answers 4xx and the client raises."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from promote_support import write_eval

from emtune.config.promote import PromoteConfig
from emtune.errors import ConfigError, RegistryError
from emtune.promote.kubeflow_registry import KubeflowRegistry
from emtune.promote.run import promote

if TYPE_CHECKING:
    from kfp_mock import KfpMock
    from mr_mock import MrMock

pytest_plugins = ["kfp_mock", "mr_mock"]

API = "/api/model_registry/v1alpha3"
BASE = [2, 3, 4, 5] * 10


def test_register_then_rerun_speaks_the_registry_api(
    mr_registry: MrMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMTUNE_REGISTRY_TOKEN", "contract-test-token")  # the document requires a bearer token
    evals = write_eval(tmp_path / "run", "s3://ckpts/emtune/run-1", {0: BASE, 2: [c + 3 for c in BASE]})
    cfg = PromoteConfig(registry="kubeflow", registry_uri=mr_registry.url, storage_key="emtune-s3")

    first = promote(cfg, [evals], run_id="run-1", config_hash="abc")
    assert first.decision.promoted and first.created and first.version == "run-1-step-2" and first.alias_moved
    posts = {path: body for method, path, body in mr_registry.requests if method == "POST"}
    assert posts[f"{API}/registered_models"]["name"] == "emtune"
    version = posts[f"{API}/model_versions"]
    assert version["name"] == "run-1-step-2"
    assert version["customProperties"]["emtune.run_id"]["string_value"] == "run-1"
    assert version["customProperties"]["emtune.config_hash"]["string_value"] == "abc"
    artifact = next(body for path, body in posts.items() if path.endswith("/artifacts"))
    assert artifact["uri"] == "s3://ckpts/emtune/run-1/step-2" and artifact["storageKey"] == "emtune-s3"
    assert artifact["modelFormatName"] == "safetensors"
    patches = [(path, body) for method, path, body in mr_registry.requests if method == "PATCH"]
    champion = next(body for path, body in patches if path.startswith(f"{API}/registered_models/"))
    assert champion["customProperties"]["emtune.champion"]["string_value"] == "run-1-step-2"

    before = len(mr_registry.requests)
    again = promote(cfg, [evals], run_id="run-1", config_hash="abc")
    assert again.version == first.version and again.created is False
    rerun = mr_registry.requests[before:]
    assert not [path for method, path, _ in rerun if method == "POST"]  # nothing created twice
    assert any(method == "PATCH" and path.startswith(f"{API}/model_versions/") for method, path, _ in rerun)


def test_without_the_token_the_registry_refuses(mr_mock: KfpMock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not vacuous: the mock enforces the document's bearer auth."""
    monkeypatch.delenv("EMTUNE_REGISTRY_TOKEN", raising=False)
    with pytest.raises(RegistryError, match="401"):
        KubeflowRegistry(mr_mock.url, "emtune", "champion")


def test_a_bad_registry_address_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="http"):
        KubeflowRegistry("registry:8080", "emtune", "champion")
