"""One boto3 S3 client built from StoreConfig, each request under a total deadline (the body of a GetObject
included); credentials come from boto3's default chain only."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from emtune.config.store import StoreConfig
from emtune.deadlines import call_with_deadline
from emtune.errors import StoreError


def make_s3_client(cfg: StoreConfig) -> Any:
    import boto3
    from botocore.config import Config

    extra: dict[str, Any] = {}
    if cfg.checksum_compat:
        extra.update(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    config = Config(
        region_name=cfg.region,
        s3={"addressing_style": "path" if cfg.path_style else "auto"},
        retries={"max_attempts": cfg.max_attempts, "mode": "standard"},
        connect_timeout=cfg.connect_timeout_s,
        read_timeout=cfg.read_timeout_s,
        # One pooled connection per parallel part transfer, or s3transfer's threads queue on the pool.
        max_pool_connections=max(10, cfg.max_concurrency),
        **extra,
    )
    # endpoint_url=None lets boto3 read AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL itself.
    client = boto3.session.Session().client("s3", endpoint_url=cfg.endpoint_url, config=config)
    _bound_requests(client, cfg.request_deadline_s)
    return client


def _bound_requests(client: Any, seconds: float) -> None:
    """Every API call of `client` (its retries included; s3transfer's part uploads and ranged part downloads too)
    ends within `seconds`, and so do the reads of a GetObject's body, which stream after the call returned.

    botocore funnels each operation through `_make_api_call`; its own timeouts are per socket read.
    """
    make_api_call = client._make_api_call

    def too_slow(operation: str) -> StoreError:
        return StoreError(
            f"S3 request {operation} to {client.meta.endpoint_url} did not finish within store.request_deadline_s"
            f" = {seconds:g} s (connection, retries and reads together); check the endpoint or raise the deadline"
        )

    def bounded(operation: str, params: dict[str, Any]) -> Any:
        started = time.monotonic()
        reply = call_with_deadline(lambda: make_api_call(operation, params), seconds, lambda: too_slow(operation))
        if operation == "GetObject":
            reply["Body"] = BodyWithDeadline(
                reply["Body"], int(reply.get("ContentLength") or 0), started + seconds, lambda: too_slow(operation)
            )
        return reply

    client._make_api_call = bounded


class BodyWithDeadline:
    """A GetObject body whose reads end at its request's deadline.

    A server may send the headers at once and then trickle the body; each socket read then succeeds and botocore's
    read timeout never trips, so a blocked `read` is ended from outside: at the deadline a timer shuts the
    connection's socket down (the read returns) and the read raises the deadline's error. The timer stops once the
    whole body was read, before the connection can go back to the pool for another request.
    """

    def __init__(self, body: Any, length: int, deadline: float, on_timeout: Callable[[], StoreError]) -> None:
        self._body, self._left, self._on_timeout = body, length, on_timeout
        self._socket = _socket_of(body)
        self._expired = threading.Event()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self._expired.set()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def read(self, amt: int | None = None) -> bytes:
        try:
            data: bytes = self._body.read(amt)
        except Exception:
            if self._expired.is_set():
                raise self._on_timeout() from None
            raise
        if self._expired.is_set():
            raise self._on_timeout()
        self._left -= len(data)
        if not data or amt is None or self._left <= 0:
            self._timer.cancel()
        return data

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._timer.cancel()
        self._body.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


def _socket_of(body: Any) -> socket.socket | None:
    """The socket under a botocore StreamingBody, reached the way botocore's own `set_socket_timeout` does."""
    try:
        sock = body._raw_stream._fp.fp.raw._sock
    except AttributeError:
        return None
    return sock if isinstance(sock, socket.socket) else None
