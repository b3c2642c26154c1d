"""Pre-emption: SIGTERM at a named point of `emtune train`, the pod's disk lost, resume from the store."""

from __future__ import annotations

import shutil

import pytest
from fault_support import SIGTERM_EXIT, error_lines, start, stop, tiny_config, wait_for, write_config

from emtune.store import open_store
from emtune.train import trainer

pytest_plugins = ["s3_servers"]

STEPS = 4
GRACE_S = 4.0


@pytest.fixture(scope="module")
def reference_losses(tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    """An uninterrupted run of the same config."""
    result = trainer.run(tiny_config(tmp_path_factory.mktemp("reference") / "run", **{"train.max_steps": STEPS}))
    return [m["loss"] for m in result.metrics]


@pytest.mark.faults
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("point", ["rollout@3", "save@3", "push@3", "final-push"])
def test_sigterm_then_a_lost_disk_resumes_from_the_store_exactly(
    point, reference_losses, s3_server, s3_store_config, s3_bucket, tmp_path
):
    run_dir = tmp_path / "run"
    uri = f"s3://{s3_bucket}/preempted"
    # The final push: the last pushes take seconds at 2 MB/s; the stop lands while close() waits for them.
    grace_s = 20.0 if point == "final-push" else GRACE_S
    settings = {
        "train.max_steps": STEPS,
        "train.stop_grace_s": grace_s,
        "store.uri": uri,
        "store.endpoint_url": s3_server.endpoint_url,
        "store.path_style": True,
        "store.state_every": 1,
    }
    if point == "final-push":
        settings["store.max_bandwidth_mbps"] = 2.0
    cfg = tiny_config(run_dir, **settings)
    beacon = tmp_path / "beacon"
    process = start(["train", "--config", str(write_config(cfg, tmp_path / "run.yaml"))], pause=point, beacon=beacon)
    wait_for(beacon, process)
    store = open_store(uri, s3_store_config)
    if point == "final-push":
        assert STEPS not in store.complete_steps(), "the final push ended before the stop; nothing left in flight"

    elapsed, stderr = stop(process, timeout=grace_s + 30)

    assert process.returncode == SIGTERM_EXIT, stderr[-3000:]
    assert "Traceback" not in stderr
    assert len(error_lines(stderr)) == 1 and "stopped by SIGTERM" in error_lines(stderr)[0]
    assert elapsed < grace_s + 5  # within the grace, plus the interpreter's exit
    if point == "final-push":
        assert store.complete_steps() == [1, 2, 3, 4], "the push in flight was not finished within the grace"

    shutil.rmtree(run_dir)  # the pod is gone; only the store remains
    resumed = trainer.run(cfg, resume=True)

    assert store.complete_steps() == list(range(1, STEPS + 1))
    assert all(entry.complete for entry in store.listing()), "an incomplete upload was left behind"
    losses = [store.read_manifest(step).metrics["loss"] for step in range(1, STEPS + 1)]
    assert losses == pytest.approx(reference_losses, rel=1e-6)
    assert [m["loss"] for m in resumed.metrics] == pytest.approx(reference_losses[STEPS - len(resumed.metrics) :])
    for step in store.complete_steps():
        store.verify(step)
