"""The real `TrainJobClient`: the Kubernetes API through the `kubernetes` package, nothing more."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emtune.cluster.launcher import AlreadyExists, NotFound, PodInfo
from emtune.cluster.trainjob import TRAINER_CONTAINER, TRAINER_JOB

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def current_namespace(default: str = "default") -> str:
    """The namespace of the pod we run in (its service account's), else `default`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or default
    except OSError:
        return default


@contextlib.contextmanager
def _status_errors() -> Iterator[None]:
    """The API server's 409 and 404 as the launcher's AlreadyExists and NotFound."""
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        if exc.status == 409:
            raise AlreadyExists(exc.reason) from None
        if exc.status == 404:
            raise NotFound(exc.reason) from None
        raise


class KubernetesTrainJobClient:
    def __init__(self, namespace: str, api_client: Any = None) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def create_trainjob(self, body: dict[str, Any]) -> dict[str, Any]:
        with _status_errors():
            return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def create_config_map(self, body: dict[str, Any]) -> None:
        with _status_errors():
            self.core.create_namespaced_config_map(self.namespace, body)

    def replace_config_map(self, body: dict[str, Any]) -> None:
        self.core.replace_namespaced_config_map(body["metadata"]["name"], self.namespace, body)

    def get_trainjob(self, name: str) -> dict[str, Any]:
        with _status_errors():
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def node0_pod(self, name: str) -> PodInfo | None:
        selector = ",".join(
            [
                f"jobset.sigs.k8s.io/jobset-name={name}",
                f"jobset.sigs.k8s.io/replicatedjob-name={TRAINER_JOB}",
                "jobset.sigs.k8s.io/job-index=0",
                "batch.kubernetes.io/job-completion-index=0",
            ]
        )
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        if not pods:
            return None
        newest = max(pods, key=lambda pod: pod.metadata.creation_timestamp)  # a restarted node 0 replaces the old
        return PodInfo(name=newest.metadata.name, phase=newest.status.phase or "Unknown")

    def stream_logs(self, pod: str) -> Iterator[str]:
        from kubernetes import watch

        yield from watch.Watch().stream(
            self.core.read_namespaced_pod_log, name=pod, namespace=self.namespace, container=TRAINER_CONTAINER
        )

    def delete_trainjob(self, name: str) -> None:
        from kubernetes import client

        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, body=client.V1DeleteOptions(propagation_policy="Foreground")
        )


def record_in_config_map(namespace: str, name: str, key: str, text: str, api_client: Any = None) -> None:
    """Set one key of the existing ConfigMap `name` (a merge patch: the rest of it stays as it is)."""
    from kubernetes import client, config

    if api_client is None:
        config.load_incluster_config()
        api_client = client.ApiClient()
    client.CoreV1Api(api_client).patch_namespaced_config_map(name, namespace, {"data": {key: text}})
