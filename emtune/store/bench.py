"""`emtune bench store`: the store's push/pull throughput against single-stream put/get of the same bytes."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.s3client import make_s3_client
from emtune.store.local_s3 import LocalS3Server, moto_server, pointed_at, rclone_server
from emtune.store.s3 import S3Store

log = logging.getLogger(__name__)

SERVERS: dict[str, Callable[[], AbstractContextManager[LocalS3Server]]] = {
    "moto": moto_server,
    "rclone": rclone_server,
}
_BUCKET = "emtune-bench"


@dataclass(frozen=True)
class BenchRow:
    server: str
    megabytes: float
    put_mbps: float  # baseline: one put_object per file, one after another
    push_mbps: float
    get_mbps: float  # baseline: one get_object per file, one after another
    pull_mbps: float


def write_checkpoint(folder: Path, size_mb: int, files: int) -> int:
    """A synthetic step folder shaped like a real one: one large weights file, smaller state files."""
    total = size_mb * 1024 * 1024
    sizes = [total] if files == 1 else [total // 2] + [(total - total // 2) // (files - 1)] * (files - 1)
    for index, size in enumerate(sizes):
        path = folder / ("model.safetensors" if index == 0 else f"trainer_state/part-{index}.bin")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for written in range(0, size, 4 * 1024 * 1024):
                handle.write(os.urandom(min(4 * 1024 * 1024, size - written)))
    return sum(sizes)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _files(folder: Path) -> Iterator[Path]:
    return (path for path in sorted(folder.rglob("*")) if path.is_file())


def bench_server(server: LocalS3Server, cfg: StoreConfig, work: Path, size_mb: int, files: int) -> BenchRow:
    cfg = cfg.model_copy(update={"endpoint_url": server.endpoint_url, "path_style": True})
    source, pulled, fetched = work / "step-1", work / f"pulled-{server.name}", work / f"get-{server.name}"
    if not source.exists():
        write_checkpoint(source, size_mb, files)
    total = sum(path.stat().st_size for path in _files(source))
    with pointed_at(server):
        client = make_s3_client(cfg)
        client.create_bucket(Bucket=_BUCKET)

        def put_each() -> None:
            for path in _files(source):
                with open(path, "rb") as body:
                    client.put_object(Bucket=_BUCKET, Key=f"baseline/{path.relative_to(source)}", Body=body)

        def get_each() -> None:
            for path in _files(source):
                target = fetched / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                reply = client.get_object(Bucket=_BUCKET, Key=f"baseline/{path.relative_to(source)}")
                with open(target, "wb") as handle:
                    for chunk in reply["Body"].iter_chunks(chunk_size=1024 * 1024):
                        handle.write(chunk)

        store = S3Store(_BUCKET, "bench", cfg)
        put_s = _timed(put_each)
        push_s = _timed(lambda: store.push(source, 1, run_id="bench", config_hash="bench", metrics={}))
        get_s = _timed(get_each)
        pull_s = _timed(lambda: store.pull(1, pulled))
    megabytes = total / 1e6
    row = BenchRow(server.name, megabytes, megabytes / put_s, megabytes / push_s, megabytes / get_s, megabytes / pull_s)
    log.info("%s", row)
    return row


def run_bench(cfg: StoreConfig, size_mb: int = 64, files: int = 8, servers: list[str] | None = None) -> list[BenchRow]:
    """Start each local server in turn and measure the store against the single-stream baseline on it."""
    names = servers or list(SERVERS)
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise StoreError(f"unknown bench server(s) {unknown}; allowed: {', '.join(SERVERS)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="emtune-bench-store-") as tmp:
        for name in names:
            with SERVERS[name]() as server:
                rows.append(bench_server(server, cfg, Path(tmp), size_mb, files))
    return rows
