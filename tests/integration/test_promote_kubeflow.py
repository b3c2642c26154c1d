"""Promotion into Kubeflow Model Registry with its real `model-registry` client against a contract mock of the
registry's published v1alpha3 API (Prism): every request the client makes must be one the document allows.

Prism answers each lookup with the document's example, so the model and the run's version exist already: the
path checked is the idempotent one (a re-registration updates the version, creates nothing) and the champion's
move onto it."""

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

pytest_plugins = ["kfp_mock", "mr_mock"]

API = "/api/model_registry/v1alpha3"
BASE = [2, 3, 4, 5] * 10


def test_promote_speaks_the_registry_api(mr_mock: KfpMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMTUNE_REGISTRY_TOKEN", "contract-test-token")  # the document requires a bearer token
    evals = write_eval(tmp_path / "run", "s3://ckpts/emtune/run-1", {0: BASE, 2: [c + 3 for c in BASE]})
    cfg = PromoteConfig(registry="kubeflow", registry_uri=mr_mock.url, storage_key="emtune-s3")
    before = len(mr_mock.requests())
    outcome = promote(cfg, [evals], run_id="run-1", config_hash="abc")
    assert outcome.decision.promoted and outcome.version == "run-1-step-2"
    assert outcome.created is False  # the mock's example version stands for an earlier registration
    requests = [line.split("?")[0] for line in mr_mock.requests()[before:]]
    assert f"PATCH {API}/model_versions/1" in requests  # the version's tags updated
    assert f"PATCH {API}/registered_models/1" in requests  # the champion property set
    assert not any(line.startswith("POST") for line in requests)  # nothing created twice
    assert all(line.split()[1].startswith(API) for line in requests)


def test_without_the_token_the_registry_refuses(mr_mock: KfpMock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not vacuous: the mock enforces the document's bearer auth."""
    monkeypatch.delenv("EMTUNE_REGISTRY_TOKEN", raising=False)
    with pytest.raises(RegistryError, match="401"):
        KubeflowRegistry(mr_mock.url, "emtune", "champion")


def test_a_bad_registry_address_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="http"):
        KubeflowRegistry("registry:8080", "emtune", "champion")
