"""A fault proxy in front of moto's real S3 server: silence and a one-byte-a-second trickle end at the request
deadline; errors, drops and truncation end in a retry; bytes flipped in transit are caught; nothing is left."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from fault_proxy import FaultProxy, fault_proxy

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.store import open_store
from emtune.store.ops import list_uri

pytest_plugins = ["s3_servers"]

DEADLINE_S = 2.0


@pytest.fixture
def proxy(moto_s3_server, use_s3_server) -> Iterator[FaultProxy]:
    use_s3_server(moto_s3_server)
    with fault_proxy(urlparse(moto_s3_server.endpoint_url).port or 80) as running:
        yield running


@pytest.fixture
def bucket(moto_s3_server, use_s3_server, new_bucket) -> str:
    return new_bucket(use_s3_server(moto_s3_server))


def through(proxy: FaultProxy, **changes) -> StoreConfig:
    settings = {
        "endpoint_url": proxy.endpoint_url,
        "path_style": True,
        "max_attempts": 2,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 3.0,
        "request_deadline_s": DEADLINE_S,
        "multipart_threshold_mb": 5,
        "part_size_mb": 5,
    }
    return StoreConfig(**{**settings, **changes})


# A bound in seconds is only meaningful on a machine that is not running other suites: `make test-faults`.
@pytest.mark.faults
@pytest.mark.parametrize("mode", ["silence", "trickle"])
def test_a_silent_or_trickling_server_ends_at_the_request_deadline(proxy, bucket, mode):
    proxy.set(mode)
    started = time.monotonic()

    with pytest.raises(StoreError, match=r"did not finish within store\.request_deadline_s = 2 s"):
        list_uri(f"s3://{bucket}/run", through(proxy))

    assert time.monotonic() - started < DEADLINE_S + 1.0


# A pull downloads a file above the multipart threshold in ranged parts, each one GetObject whose body streams
# after the call returned; a server that answers at once and then trickles the body is cut off at the deadline too.
@pytest.mark.faults
def test_a_body_trickled_after_prompt_headers_ends_the_pull_at_the_request_deadline(
    proxy, bucket, make_step_dir, tmp_path
):
    store = open_store(f"s3://{bucket}/run", through(proxy))
    store.push(make_step_dir(1, weights_bytes=6 * 1024 * 1024), 1, run_id="r", config_hash="h", metrics={})
    proxy.set("trickle-body", match="model.safetensors")
    outcome: dict[str, BaseException] = {}

    def pull() -> None:
        try:
            store.pull(1, tmp_path / "pulled" / "step-1")
        except BaseException as exc:
            outcome["error"] = exc

    puller = threading.Thread(target=pull, daemon=True)  # an unbounded pull fails the test instead of hanging it
    puller.start()
    puller.join(DEADLINE_S + 1.0)

    assert not puller.is_alive(), "the pull went on past the request deadline"
    with pytest.raises(StoreError, match=r"GetObject .* did not finish within store\.request_deadline_s = 2 s"):
        raise outcome["error"]
    assert not (tmp_path / "pulled").exists() or not any((tmp_path / "pulled").iterdir())


@pytest.mark.parametrize("mode", ["error", "drop", "truncate"])
def test_one_failed_exchange_is_retried_and_the_push_commits(proxy, bucket, make_step_dir, mode):
    cfg = through(proxy)
    store = open_store(f"s3://{bucket}/run", cfg)
    proxy.set(mode, count=1, match="model.safetensors")

    store.push(make_step_dir(1), 1, run_id="r", config_hash="h", metrics={})

    proxy.set("pass")
    store.verify(1)


def test_bytes_flipped_in_transit_are_caught_and_the_pull_leaves_nothing(proxy, bucket, make_step_dir, tmp_path):
    store = open_store(f"s3://{bucket}/run", through(proxy, checksum_compat=True))  # no CRC: only emtune's sha256
    store.push(make_step_dir(1), 1, run_id="r", config_hash="h", metrics={})
    proxy.set("bitflip", match="GET /" + bucket + "/run/step-1/files-")

    with pytest.raises(StoreError, match="is corrupt"):
        store.pull(1, tmp_path / "pulled" / "step-1")
    assert not (tmp_path / "pulled").exists() or not any((tmp_path / "pulled").iterdir())
