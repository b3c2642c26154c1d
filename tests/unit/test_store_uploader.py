"""BackgroundPusher over a real local store: order, back-pressure, retention, failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from emtune.errors import StoreError
from emtune.store.local import LocalStore
from emtune.store.uploader import BackgroundPusher


class GatedStore(LocalStore):
    """A local store whose uploads wait for the test to open a gate: a slow store, deterministically."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()

    def _upload(self, items):
        assert self.gate.wait(timeout=30), "the test never opened the gate"
        super()._upload(items)


def step_dir(root: Path, step: int) -> Path:
    folder = root / f"step-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes([step]) * 1000)
    (folder / "checkpoint.json").write_text(f'{{"step": {step}}}')
    return folder


def submit(pusher: BackgroundPusher, root: Path, step: int) -> None:
    pusher.submit(step_dir(root, step), step, run_id="r", config_hash="h", metrics={"step": step})


def test_submit_blocks_when_the_queue_is_full_and_resumes_when_the_store_catches_up(tmp_path):
    store = GatedStore(tmp_path / "store")
    pusher = BackgroundPusher(store, max_pending=1, keep_last=None)
    submit(pusher, tmp_path / "run", 1)  # taken by the worker, waiting at the gate
    submit(pusher, tmp_path / "run", 2)  # waits in the queue
    step_dir(tmp_path / "run", 3)
    third = threading.Thread(
        target=pusher.submit,
        args=(tmp_path / "run" / "step-3", 3),
        kwargs={"run_id": "r", "config_hash": "h", "metrics": {}},
    )
    third.start()
    third.join(timeout=0.5)
    assert third.is_alive(), "a full queue must hold the trainer back"
    assert pusher.pending_steps() == [1, 2, 3]
    assert store.complete_steps() == []

    store.gate.set()
    third.join(timeout=30)
    pusher.close()
    assert store.complete_steps() == [1, 2, 3]
    assert pusher.pending_steps() == []
    assert store.read_manifest(2).metrics == {"step": 2}


def test_retention_runs_after_each_push_and_keeps_the_newest(tmp_path):
    store = LocalStore(tmp_path / "store")
    pusher = BackgroundPusher(store, max_pending=2, keep_last=2)
    for step in (1, 2, 3, 4):
        submit(pusher, tmp_path / "run", step)
    pusher.close()
    assert store.complete_steps() == [3, 4]
    assert store.latest() == 4


def test_a_failed_push_stops_further_submits_fails_close_and_keeps_its_step_protected(tmp_path):
    store = LocalStore(tmp_path / "store")
    pusher = BackgroundPusher(store, max_pending=1, keep_last=None)
    pusher.submit(tmp_path / "run" / "step-1", 1, run_id="r", config_hash="h", metrics={})  # no such folder
    deadline = time.monotonic() + 30
    while not pusher._failures and time.monotonic() < deadline:
        time.sleep(0.01)

    with pytest.raises(StoreError, match=r"step 1: local step folder .*step-1' does not exist"):
        submit(pusher, tmp_path / "run", 2)
    with pytest.raises(StoreError, match=r"1 push\(es\) to .* failed"):
        pusher.close()
    assert pusher.pending_steps() == [1]  # not in the store: local pruning must keep it
    assert store.complete_steps() == []
