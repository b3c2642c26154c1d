"""MLflow Model Registry: a registered model whose versions point at store URIs (no artifacts are copied), tagged
with emtune's provenance and scores; the champion is an MLflow alias. Works with a tracking server (http(s)://)
or a local store (sqlite:///...), through the `mlflow` client."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from emtune.errors import RegistryError
from emtune.promote.registry import TAG, Candidate, Champion, Registered

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


def _client(uri: str) -> MlflowClient:
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise RegistryError(
            "promote.registry 'mlflow' needs the mlflow client: pip install 'emtune[registry]'"
        ) from None
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class MlflowRegistry:
    def __init__(self, uri: str, model_name: str, alias: str) -> None:
        self.uri, self.name, self.alias = uri, model_name, alias
        self._mlflow = _client(uri)

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return func(*args, **kwargs)
        except MlflowException as exc:
            raise RegistryError(f"MLflow registry {self.uri!r} refused to {what}: {exc.message}") from None

    def _link(self, version: str) -> str | None:
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/#/models/{self.name}/versions/{version}"
        return None

    def _existing(self, candidate: Candidate) -> str | None:
        """The version registered earlier for this run's step, if any (the idempotency key: run id and step)."""
        found = self._call(
            "search model versions", self._mlflow.search_model_versions, f"name = '{self.name}'", max_results=10_000
        )
        for version in found:
            tags = version.tags or {}
            if tags.get(TAG + "run_id") == candidate.run_id and tags.get(TAG + "step") == str(candidate.step):
                return str(version.version)
        return None

    def register(self, candidate: Candidate) -> Registered:
        from mlflow.exceptions import MlflowException

        try:
            self._mlflow.get_registered_model(self.name)
        except MlflowException:
            self._call("create the registered model", self._mlflow.create_registered_model, self.name)
        existing = self._existing(candidate)
        if existing is not None:
            for key, value in candidate.tags().items():
                self._call("tag a version", self._mlflow.set_model_version_tag, self.name, existing, key, value)
            log.info("%s version %s already holds %s; tags updated", self.name, existing, candidate.version_name)
            return Registered(existing, created=False, link=self._link(existing))
        version = self._call(
            "create a model version", self._mlflow.create_model_version, self.name, candidate.source,
            tags=candidate.tags(), description=f"emtune run {candidate.run_id}, step {candidate.step}",
        )  # fmt: skip
        return Registered(str(version.version), created=True, link=self._link(str(version.version)))

    def champion(self) -> Champion | None:
        from mlflow.exceptions import MlflowException

        try:
            version = self._mlflow.get_model_version_by_alias(self.name, self.alias)
        except MlflowException:
            return None  # no such model or alias yet
        return Champion(str(version.version), dict(version.tags or {}))

    def make_champion(self, version: str) -> None:
        self._call("set the alias", self._mlflow.set_registered_model_alias, self.name, self.alias, version)
