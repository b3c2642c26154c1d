"""The store's commit under faults (fast, file:// store): a stopped push never blocks a prefix, a second writer
never damages a committed step, and the pusher's abort keeps its deadline even after an interrupted close()."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from emtune.errors import StoreError
from emtune.store.local import LocalStore
from emtune.store.manifest import MANIFEST
from emtune.store.uploader import BackgroundPusher


def step_folder(root: Path, step: int, seed: int = 0) -> Path:
    """A sealed step with resume state, its bytes fixed by `seed` (two runs: two seeds)."""
    folder = root / f"step-{step}"
    (folder / "trainer_state").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes([seed, step]) * 5000)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "trainer_state" / "optimizer.bin").write_bytes(bytes([seed]) * 3000)
    (folder / "trainer_state" / "state.json").write_text(f'{{"step": {step}, "seed": {seed}}}')
    (folder / "checkpoint.json").write_text(f'{{"step": {step}}}')
    return folder


def push(store: LocalStore, folder: Path, step: int, run_id: str = "run-a") -> None:
    store.push(folder, step, run_id=run_id, config_hash="h", metrics={}, with_state=True)


class StopBeforeCommit(LocalStore):
    """A push stopped (SIGKILL, abandoned at the deadline) after every file, before the step's manifest."""

    def _commit(self, step, manifest, *, replace):  # type: ignore[no-untyped-def]
        raise RuntimeError("killed")


def test_a_push_stopped_before_its_commit_is_incomplete_and_the_next_push_replaces_it(tmp_path):
    root = tmp_path / "store"
    with pytest.raises(RuntimeError):
        push(StopBeforeCommit(root), step_folder(tmp_path / "first", 2, seed=1), 2)
    store = LocalStore(root)
    assert store.complete_steps() == [] and not store.has_state(2)
    assert [(entry.step, entry.complete) for entry in store.listing()] == [(2, False)]

    push(store, step_folder(tmp_path / "restarted", 2, seed=2), 2, run_id="run-b")  # other bytes, other run

    assert store.complete_steps() == [2] and store.state_steps() == [2]
    store.verify(2)
    assert store.read_manifest(2).run_id == "run-b"
    leftovers = [key for key in store._list("") if "step-2" in key]
    manifest = store.read_manifest(2)
    assert all(manifest.upload in key or manifest.state_upload in key or key.endswith(MANIFEST) for key in leftovers)


def test_an_incomplete_step_holding_only_resume_state_is_listed_and_removable(tmp_path):
    root = tmp_path / "store"

    class StopAfterState(LocalStore):
        def _upload_files(self, prefix, entries):  # type: ignore[no-untyped-def]
            if prefix.startswith("step-"):
                raise RuntimeError("killed")  # the state set is up, the model files not
            return super()._upload_files(prefix, entries)

    with pytest.raises(RuntimeError):
        push(StopAfterState(root), step_folder(tmp_path / "run", 3), 3)
    store = LocalStore(root)
    assert [(entry.step, entry.complete) for entry in store.listing()] == [(3, False)]

    store.remove(3)

    assert store._list("") == {}


class LooksEarly(LocalStore):
    """A writer whose first look for a commit came before the other writer's commit landed."""

    looked = False

    def _manifest_or_none(self, step, key_prefix=None):  # type: ignore[no-untyped-def]
        if key_prefix is None and not self.looked:
            self.looked = True
            return None
        return super()._manifest_or_none(step, key_prefix)


def test_a_second_writer_never_changes_a_byte_of_a_committed_step(tmp_path):
    store = LocalStore(tmp_path / "store")
    push(store, step_folder(tmp_path / "a", 1, seed=1), 1, run_id="run-a")
    before = {key: store._stored_sha256(key) for key in store._list("")}

    with pytest.raises(StoreError, match="already committed by run 'run-a' with different files"):
        push(store, step_folder(tmp_path / "b", 1, seed=2), 1, run_id="run-b")
    # The race: b uploads its files before a's commit lands, and commits after it.
    b_folder = step_folder(tmp_path / "b2", 1, seed=3)
    racing = LooksEarly(tmp_path / "store")
    with pytest.raises(StoreError, match="already committed"):
        push(racing, b_folder, 1, run_id="run-b")

    after = {key: store._stored_sha256(key) for key in before}
    assert after == before
    store.verify(1)


class GatedStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()

    def _upload(self, items):  # type: ignore[no-untyped-def]
        assert self.gate.wait(timeout=30)
        super()._upload(items)


def test_abort_after_an_interrupted_close_still_waits_for_the_push_in_flight(tmp_path):
    store = GatedStore(tmp_path / "store")
    pusher = BackgroundPusher(store, max_pending=2, keep_last=None)
    pusher.submit(step_folder(tmp_path / "run", 6), 6, run_id="r", config_hash="h", metrics={})
    interrupted = threading.Thread(target=pusher.close, daemon=True)  # close() that a signal will cut short
    interrupted.start()
    interrupted.join(timeout=0.2)
    threading.Timer(0.5, store.gate.set).start()

    left = pusher.abort(time.monotonic() + 10)

    assert left == [] and store.complete_steps() == [6]


def test_abort_abandons_a_push_that_outlives_the_deadline(tmp_path):
    store = GatedStore(tmp_path / "store")
    pusher = BackgroundPusher(store, max_pending=2, keep_last=None)
    pusher.submit(step_folder(tmp_path / "run", 1), 1, run_id="r", config_hash="h", metrics={})
    pusher.submit(step_folder(tmp_path / "run", 2), 2, run_id="r", config_hash="h", metrics={})
    started = time.monotonic()

    left = pusher.abort(started + 0.5)

    assert time.monotonic() - started < 1.5
    assert left == [1, 2]
    store.gate.set()
    pusher._worker.join(timeout=10)
    assert store.complete_steps() == [1]  # the push already under way ended; the queued one was dropped
    assert os.path.isdir(tmp_path / "run" / "step-2")
