"""Store URIs, manifests and local step folders: no server needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.store import open_store, split_step_uri
from emtune.store.local import LocalStore
from emtune.store.manifest import FileEntry, Manifest, scan_step_dir
from emtune.store.ops import read_local_step


@pytest.mark.parametrize("uri", ["gs://bucket/run", "http://host/run", "hf://org/model"])
def test_unknown_scheme_names_it_and_the_allowed_ones(uri):
    scheme = uri.split("://")[0]
    with pytest.raises(StoreError, match=rf"scheme '{scheme}://'; allowed: s3://, file://, a plain path"):
        open_store(uri, StoreConfig())


def test_file_uri_and_plain_path_open_the_same_local_folder(tmp_path):
    by_uri, by_path = (
        open_store((tmp_path / "s").as_uri(), StoreConfig()),
        open_store(str(tmp_path / "s"), StoreConfig()),
    )
    assert isinstance(by_uri, LocalStore) and isinstance(by_path, LocalStore)
    assert by_uri.root == by_path.root == tmp_path / "s"
    assert by_uri.step_uri(3) == f"{(tmp_path / 's').as_uri()}/step-3"


@pytest.mark.parametrize("uri", ["file://relative/path", "s3:///prefix-without-bucket"])
def test_malformed_uris_are_refused(uri):
    with pytest.raises(StoreError, match="store URI"):
        open_store(uri, StoreConfig())


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://b/runs/a/step-12", ("s3://b/runs/a", 12)),
        ("s3://b/runs/a/step-12/", ("s3://b/runs/a", 12)),
        ("s3://b/runs/a", ("s3://b/runs/a", None)),
        ("s3://b/step-3", ("s3://b", 3)),
        ("/data/run/step-0", ("/data/run", 0)),
        ("s3://b/runs/step-3x", ("s3://b/runs/step-3x", None)),
    ],
)
def test_split_step_uri(uri, expected):
    assert split_step_uri(uri) == expected


def test_manifest_round_trips_and_rejects_paths_leaving_the_step_folder():
    manifest = Manifest(3, "run", "hash", [FileEntry("a/b.bin", 10, "0" * 64)], {"entropy": 0.1})
    assert Manifest.from_json(manifest.to_json(), "here") == manifest
    for bad in ("../escape", "/abs", "a//b", "./a"):
        data = json.loads(manifest.to_json())
        data["files"][0]["path"] = bad
        with pytest.raises(StoreError, match="not a valid emtune manifest"):
            Manifest.from_json(json.dumps(data), "s3://b/step-3/manifest.json")


def test_scan_lists_every_file_smallest_first_and_reserves_the_manifest_name(tmp_path):
    (tmp_path / "step-1" / "trainer_state").mkdir(parents=True)
    (tmp_path / "step-1" / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "step-1" / "trainer_state" / "rng.pt").write_bytes(b"y")
    assert [entry.path for _, entry in scan_step_dir(tmp_path / "step-1")] == [
        "trainer_state/rng.pt",
        "model.safetensors",
    ]

    (tmp_path / "step-1" / "manifest.json").write_text("{}")
    with pytest.raises(StoreError, match=r"holds a file named manifest\.json"):
        scan_step_dir(tmp_path / "step-1")
    with pytest.raises(StoreError, match="does not exist"):
        scan_step_dir(tmp_path / "missing")


def test_read_local_step_takes_what_the_trainer_recorded(tmp_path):
    folder = tmp_path / "step-7"
    (folder / "trainer_state").mkdir(parents=True)
    (folder / "checkpoint.json").write_text(json.dumps({"step": 7, "metrics": {"loss": 0.5}}))
    (folder / "trainer_state" / "state.json").write_text(json.dumps({"step": 7, "run_id": "r1", "config_hash": "h"}))
    info = read_local_step(folder)
    assert (info.step, info.run_id, info.config_hash, info.metrics) == (7, "r1", "h", {"loss": 0.5})
    assert read_local_step(Path(tmp_path / "step-9")).step == 9  # a bare folder: the step from its name
