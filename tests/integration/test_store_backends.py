"""One push/pull/verify suite, run against file://, moto's S3 server and `rclone serve s3`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.fsutil import OUTPUT_MARKER
from emtune.s3client import make_s3_client
from emtune.store import CheckpointStore, open_store
from emtune.store.local_s3 import LocalS3Server
from emtune.store.manifest import sha256_file

pytest_plugins = ["s3_servers"]


@dataclass
class Backend:
    name: str
    uri: str
    cfg: StoreConfig
    server: LocalS3Server | None

    def open(self) -> CheckpointStore:
        return open_store(self.uri, self.cfg)

    def overwrite(self, key: str, data: bytes) -> None:
        """Change an object behind the store's back."""
        if self.server is None:
            (Path(self.uri.removeprefix("file://")) / key).write_bytes(data)
        else:
            bucket, _, prefix = self.uri.removeprefix("s3://").partition("/")
            make_s3_client(self.cfg).put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)

    def delete(self, key: str) -> None:
        if self.server is None:
            (Path(self.uri.removeprefix("file://")) / key).unlink()
        else:
            bucket, _, prefix = self.uri.removeprefix("s3://").partition("/")
            make_s3_client(self.cfg).delete_object(Bucket=bucket, Key=f"{prefix}/{key}")


@pytest.fixture(params=["file", "moto", "rclone"])
def backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    use_s3_server: Callable[[LocalS3Server], StoreConfig],
    new_bucket: Callable[[StoreConfig], str],
) -> Backend:
    if request.param == "file":
        return Backend("file", (tmp_path / "store").as_uri(), StoreConfig(), None)
    server = request.getfixturevalue(f"{request.param}_s3_server")
    cfg = use_s3_server(server)
    return Backend(request.param, f"s3://{new_bucket(cfg)}/runs/r1", cfg, server)


def push(store: CheckpointStore, folder: Path, step: int, *, with_state: bool = False) -> str:
    return store.push(
        folder, step, run_id="run-abc", config_hash="cafef00d", metrics={"entropy": 0.5, "step": step},
        with_state=with_state,
    )  # fmt: skip


def tree(root: Path, *, state: bool = True) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in root.rglob("*")
        if p.is_file()
        # A pulled folder also carries emtune's output marker (who wrote it), which is no part of the step.
        and p.name != OUTPUT_MARKER
        and (state or not p.relative_to(root).as_posix().startswith("trainer_state/"))
    }


def object_key(store: CheckpointStore, step: int, name: str) -> str:
    """The key of a committed step's model file: under the upload folder its manifest names."""
    return f"step-{step}/{store.read_manifest(step).upload}/{name}"


def same_tree(left: Path, right: Path) -> bool:
    return tree(left) == tree(right)


def test_push_commits_files_then_manifest_and_pull_restores_them(backend, make_step_dir, tmp_path):
    folder = make_step_dir(1, weights_bytes=6 * 1024 * 1024)  # above the 5 MiB multipart threshold on S3
    store = backend.open()

    uri = push(store, folder, 1, with_state=True)

    assert uri == f"{backend.uri}/step-1"
    assert store.complete_steps() == [1]
    assert store.latest() == 1
    manifest = store.read_manifest(1)
    assert (manifest.step, manifest.run_id, manifest.config_hash, manifest.kind) == (1, "run-abc", "cafef00d", "step")
    assert manifest.metrics == {"entropy": 0.5, "step": 1}
    assert manifest.emtune_version
    # The step is the model: the resume state is a file set of its own under state/step-1/.
    assert {entry.path: (entry.size, entry.sha256) for entry in manifest.files} == {
        p.relative_to(folder).as_posix(): (p.stat().st_size, sha256_file(p))
        for p in folder.rglob("*")
        if p.is_file() and "trainer_state" not in p.parts
    }
    assert store.has_state(1) and store.state_steps() == [1]
    assert [(entry.step, entry.complete, entry.state) for entry in store.listing()] == [(1, True, True)]
    if backend.server is not None:
        assert backend.server.secret_key not in manifest.to_json()
        assert backend.server.access_key not in manifest.to_json()

    store.verify(1)
    pulled = store.pull(1, tmp_path / "pulled" / "step-1")  # what evaluation fetches: the model files only
    assert tree(pulled) == tree(folder, state=False) and not (pulled / "trainer_state").exists()
    resumable = store.pull(1, tmp_path / "resumed" / "step-1", with_state=True)
    assert same_tree(folder, resumable)


def test_pull_for_evaluation_skips_the_state_of_a_step_pushed_whole(backend, make_step_dir, tmp_path):
    """Steps pushed before resume state had a prefix of its own list it among their files."""
    from emtune.store.manifest import Manifest, scan_step_dir

    folder = make_step_dir(2)
    store = backend.open()
    entries = scan_step_dir(folder)  # every file, trainer_state/ included: the old layout
    store._upload_set("step-2", entries, Manifest(2, "run-abc", "cafef00d", [e for _, e in entries]))

    assert tree(store.pull(2, tmp_path / "model")) == tree(folder, state=False)
    assert same_tree(folder, store.pull(2, tmp_path / "whole", with_state=True))


def test_resume_state_is_kept_for_the_newest_steps_only(backend, make_step_dir):
    store = backend.open()
    for step in (1, 2, 3):
        push(store, make_step_dir(step), step, with_state=True)
    push(store, make_step_dir(4), 4)  # a model-only push leaves the states alone

    assert store.apply_state_retention(1, protect={1}) == [2]
    assert store.state_steps() == [1, 3] and store.complete_steps() == [1, 2, 3, 4]
    store.verify(2)  # the step itself is untouched
    with pytest.raises(StoreError, match="step-2 has no resume state"):
        store.pull(2, Path("unused"), with_state=True)
    store.remove(3)
    assert store.state_steps() == [1]
    assert not [key for key in store._list("") if key.startswith("state/step-3/")]


def test_probe_writes_reads_and_leaves_nothing_behind(backend):
    store = backend.open()
    store.probe()
    assert store._list("") == {}


def test_a_step_without_manifest_is_not_complete_and_latest_falls_back(backend, make_step_dir):
    store = backend.open()
    push(store, make_step_dir(1), 1)
    push(store, make_step_dir(2), 2)
    backend.delete("step-2/manifest.json")  # as if the commit of step 2 never happened

    assert store.complete_steps() == [1]
    assert store.latest() == 1  # the pointer names step 2, whose manifest is gone
    assert [(entry.step, entry.complete) for entry in store.listing()] == [(1, True), (2, False)]
    with pytest.raises(StoreError, match=r"step 2 .* has no manifest\.json"):
        store.pull(2, Path("unused"))


def test_corrupt_object_is_named_and_pull_leaves_nothing_behind(backend, make_step_dir, tmp_path):
    folder = make_step_dir(1)
    store = backend.open()
    push(store, folder, 1)
    size = (folder / "model.safetensors").stat().st_size
    backend.overwrite(object_key(store, 1, "model.safetensors"), os.urandom(size))  # same size, different bytes

    with pytest.raises(StoreError, match=r"step-1/files-[0-9a-f]+/model\.safetensors is corrupt"):
        store.verify(1)
    target = tmp_path / "pulled" / "step-1"
    with pytest.raises(StoreError, match=r"step-1/files-[0-9a-f]+/model\.safetensors is corrupt"):
        store.pull(1, target)
    assert not target.exists()
    assert not any((tmp_path / "pulled").iterdir())  # no temporary folder left either


def test_missing_or_resized_object_is_named(backend, make_step_dir):
    store = backend.open()
    push(store, make_step_dir(1), 1)
    backend.overwrite(object_key(store, 1, "tokenizer.json"), b"{}")
    with pytest.raises(StoreError, match=r"step-1/files-[0-9a-f]+/tokenizer\.json has 2 bytes, the manifest says"):
        store.verify(1)
    push(store, make_step_dir(2), 2)
    backend.delete(object_key(store, 2, "config.json"))
    with pytest.raises(StoreError, match=r"step-2/files-[0-9a-f]+/config\.json is listed in the manifest but missing"):
        store.pull(2, Path("unused"))


def test_repush_skips_objects_already_present_with_matching_checksum(backend, make_step_dir):
    folder = make_step_dir(3)
    store = backend.open()
    push(store, folder, 3)
    weights = object_key(store, 3, "model.safetensors")
    backend.delete("step-3/manifest.json")
    backend.delete(weights)

    result = store.upload_step(folder, 3, run_id="run-abc", config_hash="cafef00d", metrics={})

    assert (result.uploaded, result.skipped) == (1, 3)  # config, tokenizer and marker were there
    assert result.uploaded_bytes == (folder / "model.safetensors").stat().st_size
    store.verify(3)


def test_committed_step_is_never_overwritten_with_other_files(backend, make_step_dir, tmp_path):
    store = backend.open()
    push(store, make_step_dir(1), 1)
    other = make_step_dir(1, run_dir=tmp_path / "other-run")  # same step, different random weights

    with pytest.raises(StoreError, match="already committed by run 'run-abc' with different files"):
        push(store, other, 1)
    store.verify(1)  # the committed step is untouched


def test_manifest_write_is_conditional_where_the_store_supports_it(backend):
    store = backend.open()
    assert store._put_bytes("step-9/manifest.json", b"first", if_absent=True)
    second = store._put_bytes("step-9/manifest.json", b"second", if_absent=True)
    if backend.name == "rclone":  # rclone serve s3 ignores If-None-Match: the last writer wins there
        assert (second, store._get_bytes("step-9/manifest.json")) == (True, b"second")
    else:
        assert (second, store._get_bytes("step-9/manifest.json")) == (False, b"first")


def test_pushing_the_same_step_twice_is_a_no_op(backend, make_step_dir):
    folder = make_step_dir(1)
    store = backend.open()
    push(store, folder, 1)
    result = store.upload_step(folder, 1, run_id="run-abc", config_hash="cafef00d", metrics={})
    assert result.already_complete
    assert result.uploaded == 0


def test_latest_pointer_never_goes_back_and_retention_keeps_newest_and_protected(backend, make_step_dir, tmp_path):
    store = backend.open()
    for step in (1, 2, 3, 4):
        push(store, make_step_dir(step), step)
    assert store.latest() == 4
    store.remove(2)
    push(store, make_step_dir(2, run_dir=tmp_path / "late"), 2)  # an older step arriving late
    assert store.latest() == 4
    assert store._get_bytes("latest") == b"4\n"

    assert store.apply_retention(2, protect={1}) == [2]
    assert store.complete_steps() == [1, 3, 4]
    assert store.apply_retention(1) == [1, 3]
    assert store.complete_steps() == [4]
    assert store.listing()[0].step == 4  # removed steps leave no objects behind

    store.remove(4)
    assert store.latest() is None
    assert store._get_bytes("latest") is None
