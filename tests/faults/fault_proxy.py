"""A fault proxy on 127.0.0.1 in front of a real S3 server: each connection is forwarded, and the response goes
back changed by the current mode. One HTTP exchange per connection is enough for the faults it injects."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MODES = ("pass", "silence", "trickle", "trickle-body", "error", "drop", "truncate", "bitflip")


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.faults_left: int | None = None  # None: every response; N: the next N, then pass
        self.match: bytes | None = None  # only requests whose first line holds this
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode: str, count: int | None = None, match: str | None = None) -> None:
        assert mode in MODES
        self.mode, self.faults_left, self.match = mode, count, None if match is None else match.encode()

    def _take_mode(self, request_line: bytes) -> str:
        if self.match is not None and self.match not in request_line:
            return "pass"
        if self.faults_left is None:
            return self.mode
        if self.faults_left <= 0:
            return "pass"
        self.faults_left -= 1
        return self.mode

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            request = _read_request(client)
            mode = self._take_mode(request.split(b"\r\n", 1)[0])
            if mode == "silence":  # read, never answer
                while not self._closed.wait(0.1):
                    pass
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with upstream:
                if mode == "error":
                    client.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    return
                if mode == "drop":
                    return
                upstream.sendall(request)
                response = _read_all(upstream)
                if mode == "truncate":
                    response = response[: max(len(response) // 2, 1)]
                elif mode == "bitflip":
                    response = response[:-1] + bytes([response[-1] ^ 0x01])
                if mode in ("trickle", "trickle-body"):  # everything, or the body after prompt headers, at 1 B/s
                    start = response.index(b"\r\n\r\n") + 4 if mode == "trickle-body" else 0
                    client.sendall(response[:start])
                    for index in range(start, len(response)):
                        if self._closed.is_set():
                            return
                        client.sendall(response[index : index + 1])
                        time.sleep(1.0)
                    return
                client.sendall(response)

    def close(self) -> None:
        self._closed.set()
        self._server.close()


def _read_request(sock: socket.socket) -> bytes:
    """Headers, then Content-Length bytes of body; the proxy forces one exchange per connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    lines = head.split(b"\r\n")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"expect" and b"100-continue" in value.lower():
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client sends the body only then
    lines = [line for line in lines if not line.lower().startswith(b"expect:")]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    kept = [line for line in lines if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n" + body


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@contextmanager
def fault_proxy(upstream_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream_port)
    try:
        yield proxy
    finally:
        proxy.close()
