"""S3-only behaviour against real local servers: multipart transfers, endpoint from the environment, bad input."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.store import open_store
from emtune.store.manifest import sha256_file
from emtune.store.resume import fetch_latest

pytest_plugins = ["s3_servers"]

MIB = 1024 * 1024


def test_multipart_push_and_pull_of_a_41_mb_file(
    s3_server, s3_store_config, s3_bucket, s3_client, make_step_dir, tmp_path
):
    folder = make_step_dir(7, weights_bytes=41 * MIB)
    store = open_store(f"s3://{s3_bucket}/big", s3_store_config)

    store.push(folder, 7, run_id="run-abc", config_hash="cafef00d", metrics={})

    weights = f"big/step-7/{store.read_manifest(7).upload}/model.safetensors"
    head = s3_client.head_object(Bucket=s3_bucket, Key=weights, PartNumber=1)
    if s3_server.name == "moto":  # rclone stores the joined file and reports no part count
        assert head["PartsCount"] == 9  # 41 MiB in 5 MiB parts
    assert store.listing()[0].bytes > 41 * MIB
    store.verify(7)
    pulled = store.pull(7, tmp_path / "pulled")
    assert sha256_file(pulled / "model.safetensors") == sha256_file(folder / "model.safetensors")


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_endpoint_comes_from_aws_endpoint_url_s3(s3_server, s3_bucket, make_step_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    cfg = StoreConfig(path_style=True)  # no endpoint_url: boto3 reads the environment

    store = open_store(f"s3://{s3_bucket}/env", cfg)
    store.push(make_step_dir(1), 1, run_id="r", config_hash="c", metrics={}, with_state=True)

    assert fetch_latest(f"s3://{s3_bucket}/env", cfg, tmp_path / "resumed") == tmp_path / "resumed" / "step-1"
    assert (tmp_path / "resumed" / "step-1" / "checkpoint.json").is_file()
    assert (tmp_path / "resumed" / "step-1" / "trainer_state" / "state.json").is_file()


def test_checksum_compat_mode_round_trips(s3_server, s3_store_config, s3_bucket, make_step_dir, tmp_path):
    cfg = s3_store_config.model_copy(update={"checksum_compat": True})
    store = open_store(f"s3://{s3_bucket}/compat", cfg)
    store.push(make_step_dir(1, weights_bytes=6 * MIB), 1, run_id="r", config_hash="c", metrics={})
    store.verify(1)
    assert (store.pull(1, tmp_path / "pulled") / "model.safetensors").stat().st_size == 6 * MIB


def test_fetch_latest_returns_none_for_an_empty_store(s3_server, s3_store_config, s3_bucket, tmp_path):
    assert fetch_latest(f"s3://{s3_bucket}/nothing-yet", s3_store_config, tmp_path / "run") is None
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_missing_bucket_is_named_at_open(s3_server, s3_store_config):
    with pytest.raises(StoreError, match=r"bucket 'no-such-bucket' does not exist at http://127\.0\.0\.1:"):
        open_store("s3://no-such-bucket/run", s3_store_config)


@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)
def test_wrong_credentials_are_refused_without_echoing_them(s3_server, s3_store_config, s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
    with pytest.raises(StoreError, match="refused access to bucket") as caught:
        open_store(f"s3://{s3_bucket}/run", s3_store_config)
    assert "not-the-secret-0123456789" not in str(caught.value)
    assert s3_server.secret_key not in str(caught.value)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_missing_credentials_say_where_they_are_looked_for(s3_server, s3_store_config, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError, match="no S3 credentials found"):
        open_store("s3://any-bucket/run", s3_store_config)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_unreachable_endpoint_fails_fast_with_a_clear_error(s3_server, s3_store_config):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    cfg = s3_store_config.model_copy(update={"endpoint_url": f"http://127.0.0.1:{closed}", "max_attempts": 3})

    started = time.monotonic()
    with pytest.raises(StoreError, match=rf"cannot reach S3 endpoint http://127\.0\.0\.1:{closed} .*3 attempts"):
        open_store("s3://bucket/run", cfg)
    assert time.monotonic() - started < 30


@contextlib.contextmanager
def silent_endpoint() -> Iterator[str]:
    """An endpoint on 127.0.0.1 that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_endpoint_that_accepts_and_never_answers_fails_within_bounds_naming_the_read_timeout(
    s3_server, s3_store_config
):
    with silent_endpoint() as endpoint:
        cfg = s3_store_config.model_copy(update={"endpoint_url": endpoint, "read_timeout_s": 1.0, "max_attempts": 2})
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            open_store("s3://bucket/run", cfg)
        elapsed = time.monotonic() - started
    message = str(caught.value)
    assert f"S3 endpoint {endpoint} accepted the connection but did not answer" in message
    assert "store.read_timeout_s = 1 s" in message and "2 attempts" in message
    assert "\n" not in message
    assert elapsed < 15  # botocore's own 60 s read timeout would take minutes


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_store_probe_leaves_nothing_behind(s3_server, s3_store_config, s3_bucket, s3_client):
    store = open_store(f"s3://{s3_bucket}/probe", s3_store_config)
    store.probe()  # writable: leaves nothing behind
    assert not s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents")
