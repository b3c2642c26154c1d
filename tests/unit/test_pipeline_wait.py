"""`emtune pipeline sync` and `unschedule` wait for KFP's API server: bounded, with backoff, one line at the end.

A real HTTP server on 127.0.0.1 plays the API server coming up (connection refused, then 503, then an answer);
the clock is simulated so the waits take no time."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from emtune.errors import PipelineError
from emtune.runs.sync import HEALTHZ_PATH, MAX_BACKOFF_S, wait_for_kfp


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server() -> Iterator[tuple[str, list[int], list[str]]]:
    """A host whose healthz answers with the queued statuses (the last one repeats), and the paths it saw."""
    statuses: list[int] = []
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            paths.append(self.path)
            status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", statuses, paths
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_waits_through_503_with_doubling_backoff(server: tuple[str, list[int], list[str]]) -> None:
    host, statuses, paths = server
    statuses.extend([503, 503, 503, 200])
    fake = FakeClock()
    wait_for_kfp(host, deadline_s=120, clock=fake.clock, sleep=fake.sleep)
    assert fake.sleeps == [2.0, 4.0, 8.0] and paths == [HEALTHZ_PATH] * 4


def test_an_auth_error_means_the_server_is_up(server: tuple[str, list[int], list[str]]) -> None:
    host, statuses, _ = server
    statuses.append(401)
    fake = FakeClock()
    wait_for_kfp(host, deadline_s=120, clock=fake.clock, sleep=fake.sleep)
    assert fake.sleeps == []


def test_gives_up_at_the_deadline_with_one_line() -> None:
    fake = FakeClock()
    host = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(PipelineError) as raised:
        wait_for_kfp(host, deadline_s=100, clock=fake.clock, sleep=fake.sleep)
    message = str(raised.value)
    assert "\\n" not in message and host in message and "100 s" in message and "ConnectionError" in message
    assert sum(fake.sleeps) == pytest.approx(100) and max(fake.sleeps) <= MAX_BACKOFF_S
