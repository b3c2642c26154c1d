"""The TrainJob launcher's state machine, driven by recorded TrainJob status sequences."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from emtune.cluster.launcher import (
    JobState,
    LaunchSettings,
    PodInfo,
    StepCancelled,
    TrainJobLauncher,
    cancel_on_sigterm,
    job_state,
)
from emtune.cluster.trainjob import build_inputs_config_map, build_trainjob
from emtune.config import load_config
from emtune.errors import TrainingError


# Conditions as Trainer v2.3's controller writes them (kubeflow/trainer v2.3.0): Complete and Failed are the
# JobSet's (sigs.k8s.io/jobset v0.12.0) conditions with the type renamed, so reason and message are JobSet's
# (pkg/runtime/framework/plugins/jobset/jobset.go, jobset's pkg/constants); a missed activeDeadlineSeconds and
# suspension are the TrainJob controller's own (pkg/controller/trainjob_controller.go, pkg/constants). A job
# that is only running carries no condition at all: Trainer v2.3 sets no "Created" or "Running".
def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-27T07:00:00Z",
        "observedGeneration": 1,
    }


COMPLETE = condition("Complete", "True", "AllJobsCompleted", "jobset completed successfully")
FAILED = condition("Failed", "True", "FailedJobs", "jobset failed due to one or more job failures")
MAX_RESTARTS = condition("Failed", "True", "ReachedMaxRestarts", "jobset failed due to reaching max number of restarts")
DEADLINE = condition("Failed", "True", "DeadlineExceeded", "TrainJob exceeded its active deadline")
# Admitted by a queue (Kueue) after being created suspended.
RESUMED = condition("Suspended", "False", "Resumed", "TrainJob is resumed")
SUSPENDED = condition("Suspended", "True", "Suspended", "TrainJob is suspended")


def snapshot(*conditions: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "status": {"conditions": list(conditions)},
    }


class RecordedCluster:
    """Replays recorded TrainJob snapshots and node-0 pod phases, one per poll, and records what it was asked."""

    def __init__(self, snapshots: list[dict[str, Any]], pod_phases: list[str | None], logs: list[str]) -> None:
        self.snapshots, self.pod_phases, self.logs = snapshots, pod_phases, logs
        self.created: list[dict[str, Any]] = []
        self.config_maps: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.polls = 0
        self.pod_polls = 0

    def create_trainjob(self, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body)
        return {**body, "metadata": {**body["metadata"], "uid": "uid-1234"}}

    def create_config_map(self, body: dict[str, Any]) -> None:
        self.config_maps.append(body)

    def replace_config_map(self, body: dict[str, Any]) -> None:
        raise AssertionError("only a retried step replaces its inputs (tests/unit/test_cluster_k8s.py)")

    def get_trainjob(self, name: str) -> dict[str, Any]:
        snap = self.snapshots[min(self.polls, len(self.snapshots) - 1)]
        self.polls += 1
        return snap

    def node0_pod(self, name: str) -> PodInfo | None:
        phase = self.pod_phases[min(self.pod_polls, len(self.pod_phases) - 1)]
        self.pod_polls += 1
        return None if phase is None else PodInfo(f"{name}-node-0-0-abcde", phase)

    def stream_logs(self, pod: str) -> Iterator[str]:
        yield from self.logs

    def delete_trainjob(self, name: str) -> None:
        self.deleted.append(name)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def job_and_inputs(tmp_path: Any) -> tuple[Any, Any]:
    cfg = load_config(None, {"train.nodes": 2, "store.uri": "s3://bucket/runs"})
    job = build_trainjob(cfg, name="emtune-run1", namespace="team", config_map="emtune-run1-inputs")

    def inputs(uid: str) -> Any:
        return build_inputs_config_map(
            cfg, b"PAR1", name="emtune-run1-inputs", namespace="team", owner=job, owner_uid=uid
        )

    return job, inputs


def launch(cluster: RecordedCluster, job: Any, inputs: Any, **settings: float) -> tuple[list[str], FakeTime]:
    lines: list[str] = []
    fake = FakeTime()
    launcher = TrainJobLauncher(
        cluster, LaunchSettings(**{"poll_s": 10.0, **settings}), clock=fake.clock, sleep=fake.sleep, emit=lines.append
    )
    launcher.run(job, inputs)
    return lines, fake


def test_job_state_reads_conditions() -> None:
    assert job_state(snapshot()) == (JobState.PENDING, "")
    assert job_state(snapshot(SUSPENDED)) == (JobState.PENDING, "")
    assert job_state(snapshot(RESUMED)) == (JobState.PENDING, "")
    assert job_state(snapshot(RESUMED, COMPLETE)) == (JobState.SUCCEEDED, "")
    assert job_state(snapshot(COMPLETE)) == (JobState.SUCCEEDED, "")
    assert job_state(snapshot(FAILED)) == (JobState.FAILED, "FailedJobs: jobset failed due to one or more job failures")
    assert job_state(snapshot(MAX_RESTARTS))[1].startswith("ReachedMaxRestarts: jobset failed due to reaching")
    assert job_state(snapshot(DEADLINE)) == (JobState.FAILED, "DeadlineExceeded: TrainJob exceeded its active deadline")
    assert job_state({"status": {"conditions": [{**FAILED, "status": "False"}]}})[0] is JobState.PENDING


def test_success_streams_node0_logs_then_waits_for_complete(job_and_inputs: Any) -> None:
    job, inputs = job_and_inputs
    cluster = RecordedCluster(
        snapshots=[snapshot(), snapshot(RESUMED), snapshot(RESUMED), snapshot(RESUMED), snapshot(RESUMED, COMPLETE)],
        pod_phases=[None, "Pending", "Running"],
        logs=["step 1 loss 0.9\n", "step 2 loss 0.7\n"],
    )
    lines, _ = launch(cluster, job, inputs)
    assert lines == ["step 1 loss 0.9", "step 2 loss 0.7"]
    assert cluster.created[0]["spec"]["trainer"]["numNodes"] == 2
    owner = cluster.config_maps[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("TrainJob", "emtune-run1", "uid-1234")
    assert cluster.deleted == []


def test_failure_raises_with_the_jobs_reason_and_keeps_the_job(job_and_inputs: Any) -> None:
    job, inputs = job_and_inputs
    cluster = RecordedCluster(
        snapshots=[snapshot(RESUMED), snapshot(RESUMED), snapshot(RESUMED, FAILED)],
        pod_phases=["Running"],
        logs=["Traceback (most recent call last):", "RuntimeError: CUDA error: out of memory"],
    )
    with pytest.raises(
        TrainingError, match=r"TrainJob emtune-run1 failed: FailedJobs: jobset failed due to one or more job failures"
    ):
        launch(cluster, job, inputs)
    assert cluster.deleted == []  # a finished job stays for `kubectl describe`


def test_failure_before_node0_runs(job_and_inputs: Any) -> None:
    job, inputs = job_and_inputs
    cluster = RecordedCluster(snapshots=[snapshot(RESUMED), snapshot(RESUMED, FAILED)], pod_phases=["Pending"], logs=[])
    with pytest.raises(TrainingError, match="FailedJobs"):
        launch(cluster, job, inputs)


def test_timeout_deletes_the_job(job_and_inputs: Any) -> None:
    job, inputs = job_and_inputs
    cluster = RecordedCluster(snapshots=[snapshot(RESUMED)], pod_phases=["Running"], logs=["step 1"])
    with pytest.raises(TrainingError, match="did not finish within 60 s; it was deleted"):
        launch(cluster, job, inputs, timeout_s=60)
    assert cluster.deleted == ["emtune-run1"]


def test_node0_never_starting_deletes_the_job(job_and_inputs: Any) -> None:
    job, inputs = job_and_inputs
    cluster = RecordedCluster(snapshots=[snapshot(RESUMED)], pod_phases=[None, "Pending"], logs=[])
    with pytest.raises(TrainingError, match="did not start running within 30 s"):
        launch(cluster, job, inputs, start_timeout_s=30)
    assert cluster.deleted == ["emtune-run1"]
    assert cluster.pod_polls == 5  # t = 0, 10, 20, 30, 40: gave up at the first poll past the limit


def test_dropped_log_stream_does_not_fail_a_running_job(job_and_inputs: Any) -> None:
    job, inputs = job_and_inputs

    class Dropping(RecordedCluster):
        def stream_logs(self, pod: str) -> Iterator[str]:
            yield "step 1"
            raise ConnectionResetError("connection reset by peer")

    cluster = Dropping(
        snapshots=[snapshot(RESUMED)] * 3 + [snapshot(RESUMED, COMPLETE)], pod_phases=["Running"], logs=[]
    )
    lines, _ = launch(cluster, job, inputs)
    assert lines == ["step 1"]
    assert cluster.deleted == []


class HungStream(RecordedCluster):
    """Node 0's log stream delivers one line, then hangs (a stuck node, a dead API connection) until released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def stream_logs(self, pod: str) -> Iterator[str]:
        yield "step 1"
        self.release.wait(60)


def test_hung_log_stream_times_out_in_the_configured_time(job_and_inputs: Any) -> None:
    job, inputs = job_and_inputs
    cluster = HungStream(snapshots=[snapshot(RESUMED)], pod_phases=["Running"], logs=[])
    fake = FakeTime()
    launcher = TrainJobLauncher(
        cluster, LaunchSettings(poll_s=10.0, timeout_s=60), clock=fake.clock, sleep=fake.sleep, emit=lambda _: None
    )
    try:
        with pytest.raises(TrainingError, match="did not finish within 60 s; it was deleted"):
            launcher.run(job, inputs)
    finally:
        cluster.release.set()
    assert cluster.deleted == ["emtune-run1"]
    assert 60 < fake.now <= 70  # gave up at the first poll past the limit, not when the stream ended


def test_hung_log_stream_does_not_hold_a_finished_job(job_and_inputs: Any) -> None:
    job, inputs = job_and_inputs
    cluster = HungStream(
        snapshots=[snapshot(RESUMED)] * 2 + [snapshot(RESUMED, COMPLETE)], pod_phases=["Running"], logs=[]
    )
    lines: list[str] = []
    fake = FakeTime()
    launcher = TrainJobLauncher(
        cluster, LaunchSettings(poll_s=10.0, drain_s=0.1), clock=fake.clock, sleep=fake.sleep, emit=lines.append
    )
    try:
        launcher.run(job, inputs)
    finally:
        cluster.release.set()
    assert cluster.deleted == []
    assert fake.now == 10  # returned at the poll that saw Complete, although the stream never ended


def test_sigterm_while_streaming_cancels_and_deletes_the_job(job_and_inputs: Any) -> None:
    """Kubernetes stops a cancelled pipeline pod with SIGTERM: the job it started must not outlive it."""
    job, inputs = job_and_inputs

    class Cancelled(HungStream):
        def get_trainjob(self, name: str) -> dict[str, Any]:
            if self.polls == 3:  # node 0 runs and its log is streaming
                os.kill(os.getpid(), signal.SIGTERM)
            return super().get_trainjob(name)

    cluster = Cancelled(snapshots=[snapshot(RESUMED)], pod_phases=["Running"], logs=[])
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(StepCancelled), cancel_on_sigterm():
            launch(cluster, job, inputs)
    finally:
        cluster.release.set()
    assert cluster.deleted == ["emtune-run1"]
    assert signal.getsignal(signal.SIGTERM) is previous
