"""Kubeflow Model Registry through its `model-registry` client (0.3.8, REST API v1alpha3): a registered model,
one version per run's chosen step (named `<run id>-step-<N>`), and a model artifact holding the step's store URI
and the data connection (storage key) that reads it. emtune's tags are the version's custom properties; the
champion is the registered model's custom property `emtune.<alias>` (the registry has no aliases)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from emtune.errors import ConfigError, RegistryError
from emtune.promote.registry import TAG, Candidate, Champion, Registered

TOKEN_ENV = "EMTUNE_REGISTRY_TOKEN"  # a bearer token for the registry (the chart's registry secret)
MODEL_FORMAT = ("safetensors", "1")  # what a step folder holds: transformers safetensors weights


class KubeflowRegistry:
    def __init__(self, uri: str, model_name: str, alias: str, *, storage_key: str | None = None) -> None:
        parsed = urlparse(uri)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"promote.registry_uri {uri!r} for kubeflow must be http(s)://host[:port]")
        try:
            from model_registry import ModelRegistry
        except ImportError:
            raise RegistryError("promote.registry 'kubeflow' needs pip install 'emtune[registry]'") from None
        secure = parsed.scheme == "https"
        self.uri, self.name, self.alias, self.storage_key = uri, model_name, alias, storage_key
        try:
            self._mr = ModelRegistry(
                f"{parsed.scheme}://{parsed.hostname}", parsed.port or (443 if secure else 80), author="emtune",
                is_secure=secure, user_token=os.environ.get(TOKEN_ENV),
            )  # fmt: skip
        except Exception as exc:  # the client raises its own StoreError or aiohttp's errors
            raise RegistryError(f"Kubeflow Model Registry {uri!r} cannot be reached: {exc}") from None

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            raise RegistryError(f"Kubeflow Model Registry {self.uri!r} refused to {what}: {exc}") from None

    def register(self, candidate: Candidate) -> Registered:
        version = candidate.version_name
        existing = self._call("look up a version", self._mr.get_model_version, self.name, version) if self._call(
            "look up the model", self._mr.get_registered_model, self.name
        ) else None  # fmt: skip
        if existing is not None:
            existing.custom_properties = {**(existing.custom_properties or {}), **candidate.tags()}
            self._call("update a version", self._mr.update, existing)
            return Registered(version, created=False, link=None)
        format_name, format_version = MODEL_FORMAT
        self._call(
            "register a version", self._mr.register_model, self.name, candidate.source, version=version,
            model_format_name=format_name, model_format_version=format_version, storage_key=self.storage_key,
            description=f"emtune run {candidate.run_id}, step {candidate.step}", metadata=candidate.tags(),
        )  # fmt: skip
        return Registered(version, created=True, link=None)

    def champion(self) -> Champion | None:
        model = self._call("look up the model", self._mr.get_registered_model, self.name)
        holder = (model.custom_properties or {}).get(TAG + self.alias) if model else None
        if not holder:
            return None
        version = self._call("look up a version", self._mr.get_model_version, self.name, str(holder))
        tags = {key: str(value) for key, value in (version.custom_properties or {}).items()} if version else {}
        return Champion(str(holder), tags)

    def make_champion(self, version: str) -> None:
        model = self._call("look up the model", self._mr.get_registered_model, self.name)
        model.custom_properties = {**(model.custom_properties or {}), TAG + self.alias: version}
        self._call("update the model", self._mr.update, model)
