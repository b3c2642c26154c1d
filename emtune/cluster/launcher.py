"""Run a TrainJob to its end: create it, wait for node 0 to run, stream its logs, wait for Complete/Failed.

The cluster is reached through `TrainJobClient`, a thin interface (the real one is `emtune.cluster.k8s`), so
the state machine here is tested over recorded status sequences. A job the launcher stops watching before it
finished — the step was cancelled, timed out, or the launcher itself failed — is deleted, so it cannot keep
GPUs busy unsupervised; a job that finished (either way) is left for inspection.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from kubeflow_trainer_api import models as m

from emtune.errors import TrainingError

log = logging.getLogger(__name__)


class StepCancelled(BaseException):
    """The pipeline step was cancelled (SIGTERM from Kubernetes/Argo); not an error of the job."""


class JobState(enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class PodInfo:
    name: str
    phase: str  # Pending | Running | Succeeded | Failed | Unknown


class AlreadyExists(Exception):
    """A create found an object of that name (HTTP 409)."""


class NotFound(Exception):
    """The object is not there (HTTP 404)."""


class TrainJobClient(Protocol):
    """What the launcher needs from the cluster, in one namespace."""

    def create_trainjob(self, body: dict[str, Any]) -> dict[str, Any]: ...  # the created object; AlreadyExists

    def create_config_map(self, body: dict[str, Any]) -> None: ...  # AlreadyExists

    def replace_config_map(self, body: dict[str, Any]) -> None: ...

    def get_trainjob(self, name: str) -> dict[str, Any]: ...  # NotFound

    def node0_pod(self, name: str) -> PodInfo | None: ...

    def stream_logs(self, pod: str) -> Iterable[str]: ...  # follows the log until the container ends

    def delete_trainjob(self, name: str) -> None: ...


def job_state(trainjob: dict[str, Any]) -> tuple[JobState, str]:
    """The job's state from its conditions, and for a failure the reason and message it gives."""
    conditions = (trainjob.get("status") or {}).get("conditions") or []
    current = {c.get("type"): c for c in conditions if c.get("status") == "True"}
    if "Failed" in current:
        failed = current["Failed"]
        detail = ": ".join(part for part in (failed.get("reason"), failed.get("message")) if part)
        return JobState.FAILED, detail or "no reason given"
    if "Complete" in current:
        return JobState.SUCCEEDED, ""
    return JobState.PENDING, ""


@dataclass
class LaunchSettings:
    poll_s: float = 10.0
    start_timeout_s: float = 3600.0  # node 0 must be running by then
    timeout_s: float = 7 * 24 * 3600.0  # the whole job, from creation
    drain_s: float = 30.0  # once the job ended, how long its log stream may take to deliver the rest


class TrainJobLauncher:
    def __init__(
        self,
        client: TrainJobClient,
        settings: LaunchSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        emit: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.emit = emit or (lambda line: log.info("[node-0] %s", line))

    def run(
        self, trainjob: m.TrainerV1alpha1TrainJob, inputs: Callable[[str], m.IoK8sApiCoreV1ConfigMap] | None = None
    ) -> None:
        """Create the job (and `inputs(uid)`, its ConfigMap), follow it to the end; raise TrainingError on failure."""
        assert trainjob.metadata is not None and trainjob.metadata.name is not None
        name = trainjob.metadata.name
        started = self.clock()
        created = self._create(name, trainjob.to_dict(), started)
        log.info("created TrainJob %s", name)
        try:
            if inputs is not None:
                self._create_inputs(inputs(created["metadata"]["uid"]).to_dict())
            state, detail = self._follow(name, started)
        except BaseException as exc:  # cancelled, timed out or broken: never leave the job running unwatched
            self._delete(name, reason=type(exc).__name__)
            raise
        if state is JobState.FAILED:
            raise TrainingError(f"TrainJob {name} failed: {detail}")
        log.info("TrainJob %s completed", name)

    def _create(self, name: str, body: dict[str, Any], started: float) -> dict[str, Any]:
        """Create the job; one left by a previous attempt of this step is replaced.

        A KFP retry reruns the step with the same run id, hence the same job name. The old job is not adopted:
        its owner is the previous attempt's pod, so it goes when Argo removes that pod, and it may have failed.
        """
        try:
            return self.client.create_trainjob(body)
        except AlreadyExists:
            log.warning("TrainJob %s exists (a previous attempt of this step): replacing it", name)
        self.client.delete_trainjob(name)
        while True:  # foreground deletion: the job is gone once its pods and its inputs ConfigMap are
            try:
                self.client.get_trainjob(name)
            except NotFound:
                break
            self._check_deadline(name, started, self.settings.start_timeout_s, "go away after deletion")
            self.sleep(self.settings.poll_s)
        return self.client.create_trainjob(body)

    def _create_inputs(self, body: dict[str, Any]) -> None:
        try:
            self.client.create_config_map(body)
        except AlreadyExists:  # left by a previous attempt whose job was deleted without it
            self.client.replace_config_map(body)

    def _follow(self, name: str, started: float) -> tuple[JobState, str]:
        """Wait for node 0 to run, stream its log while polling the job, and return how the job ended.

        The log is read on a background thread so a stream that hangs (a stuck node, a dead API connection)
        cannot keep the launcher from enforcing `timeout_s`.
        """
        while True:
            state, detail = job_state(self.client.get_trainjob(name))
            if state is not JobState.PENDING:
                return state, detail
            pod = self.client.node0_pod(name)
            if pod is not None and pod.phase in ("Running", "Succeeded", "Failed"):
                break
            self._check_deadline(name, started, self.settings.start_timeout_s, "start running")
            self.sleep(self.settings.poll_s)
        streamer = threading.Thread(target=self._stream, args=(pod.name,), name=f"logs-{pod.name}", daemon=True)
        streamer.start()
        while True:
            state, detail = job_state(self.client.get_trainjob(name))
            if state is not JobState.PENDING:
                streamer.join(self.settings.drain_s)
                return state, detail
            self._check_deadline(name, started, self.settings.timeout_s, "finish")
            self.sleep(self.settings.poll_s)

    def _stream(self, pod: str) -> None:
        try:
            for line in self.client.stream_logs(pod):
                self.emit(line.rstrip("\n"))
        except Exception as exc:  # a dropped log stream must not fail a training that goes on
            log.warning("log stream of %s ended early: %s", pod, exc)

    def _check_deadline(self, name: str, started: float, limit: float, what: str) -> None:
        if self.clock() - started > limit:
            raise TrainingError(f"TrainJob {name} did not {what} within {limit:g} s; it was deleted")

    def _delete(self, name: str, reason: str) -> None:
        log.warning("deleting TrainJob %s (%s)", name, reason)
        try:
            self.client.delete_trainjob(name)
        except Exception as exc:  # keep the original error; this one only gets logged
            log.error("could not delete TrainJob %s: %s", name, exc)


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (how Kubernetes stops a cancelled pipeline pod) into StepCancelled in the main thread."""

    def _raise(signum: int, frame: object) -> None:
        raise StepCancelled(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
