"""`emtune bench hash`: what sealing and verifying a step costs, as sha256 bytes/s against plainly reading the
same files (the baseline, same run), and the seal's share of a step save (export + hashes)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emtune.store.manifest import sha256_files

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class HashBench:
    megabytes: float
    files: int
    read_mbps: float  # reading the files, nothing else
    sha256_mbps: float  # sha256 of the same files, in parallel as the seal and the push hash them
    write_mbps: float  # writing them (what a save costs anyway)


def _read_all(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(_CHUNK):
                pass


def run_bench(size_mb: int = 256, files: int = 4, folder: Path | None = None) -> HashBench:
    """Write `files` random files of `size_mb` in all into `folder` (a temporary one by default), then time a
    read, a parallel sha256 and the write itself; each timing the best of two."""
    with tempfile.TemporaryDirectory(prefix="emtune-hash-bench-", dir=folder) as tmp:
        paths = [Path(tmp) / f"part-{index}.bin" for index in range(files)]
        each = size_mb * 1024 * 1024 // files
        block = os.urandom(min(each, _CHUNK))
        started = time.perf_counter()
        for path in paths:
            with open(path, "wb") as handle:
                for offset in range(0, each, len(block)):
                    handle.write(block[: min(len(block), each - offset)])
                handle.flush()
                os.fsync(handle.fileno())
        write_s = time.perf_counter() - started
        megabytes = each * files / 1e6
        read_s = min(_timed(lambda: _read_all(paths)) for _ in range(2))
        hash_s = min(_timed(lambda: sha256_files(paths)) for _ in range(2))
    return HashBench(megabytes, files, megabytes / read_s, megabytes / hash_s, megabytes / write_s)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
