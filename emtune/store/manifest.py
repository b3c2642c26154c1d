"""The integrity manifest of a step: what a complete step holds, written after every file it lists."""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import emtune
from emtune.errors import StoreError
from emtune.fsutil import OUTPUT_MARKER
from emtune.store.layout import is_state_path

MANIFEST = "manifest.json"
# 2: a set's files sit in an upload folder named by their content (`files-<digest>/`), which the manifest names;
# 1: files directly under the step's prefix, resume state committed by its own manifest under state/step-N/.
FORMAT = 2
_UPLOAD_NAME = re.compile(r"^files-[0-9a-f]{16}$")
# What a manifest commits: a trainer's step (model files of a folder sealed with checkpoint.json), a plain
# model pushed for evaluation (not resumable), or a step's resume state (under the store's state/ prefix).
KINDS = ("step", "model", "state")
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the step folder, '/'-separated
    size: int
    sha256: str


@dataclass
class Manifest:
    step: int
    run_id: str
    config_hash: str
    files: list[FileEntry]
    metrics: dict[str, Any] = field(default_factory=dict)
    kind: str = "step"
    emtune_version: str = emtune.__version__
    format: int = FORMAT
    upload: str = ""  # the folder under the set's prefix holding its files ("": directly under it, format 1)
    state_upload: str | None = None  # a step's committed resume state: its upload folder under state/step-N/

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def files_under_state(self) -> list[FileEntry]:
        """Resume-state files listed among a step's own (steps pushed before state had a prefix of its own)."""
        return [entry for entry in self.files if is_state_path(entry.path)]

    def same_files(self, other: Manifest) -> bool:
        return sorted(self.files, key=lambda e: e.path) == sorted(other.files, key=lambda e: e.path)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Manifest:
        try:
            data = json.loads(text)
            files = [FileEntry(_safe_path(str(f["path"])), int(f["size"]), str(f["sha256"])) for f in data["files"]]
            return cls(
                step=int(data["step"]),
                run_id=str(data["run_id"]),
                config_hash=str(data["config_hash"]),
                files=files,
                metrics=dict(data.get("metrics") or {}),
                kind=_known_kind(str(data.get("kind", "step"))),
                emtune_version=str(data.get("emtune_version", "")),
                format=int(data.get("format", 1)),
                upload=_upload_name(data.get("upload") or ""),
                state_upload=_upload_name(data["state_upload"]) if data.get("state_upload") else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"manifest {where} is not a valid emtune manifest ({exc.__class__.__name__}: {exc})"
            ) from None


def upload_name(files: list[FileEntry]) -> str:
    """The upload folder of a file set, named by its content: writers of different files never share a key, so
    no writer can change the bytes a committed manifest points to; a rerun of the same push finds its own."""
    listed = sorted((entry.path, entry.size, entry.sha256) for entry in files)
    return "files-" + hashlib.sha256(json.dumps(listed).encode()).hexdigest()[:16]


def _upload_name(name: str) -> str:
    if name and not _UPLOAD_NAME.match(name):
        raise ValueError(f"upload folder {name!r} is not of the form files-<16 hex digits>")
    return name


def _known_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def _safe_path(relative: str) -> str:
    """A manifest path must stay inside the step folder it is pulled into."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"file path {relative!r} is not a plain relative path")
    return relative


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_files(paths: list[Path]) -> list[str]:
    """Hash files in parallel: hashlib releases the GIL, and a checkpoint is many large files."""
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        return list(pool.map(sha256_file, paths))


def scan_step_dir(folder: Path, *, skip_state: bool = False) -> list[tuple[Path, FileEntry]]:
    """Every regular file under a local step folder with its size and sha256, smallest first.

    Smallest first so that an interrupted push leaves the many small files complete and only the
    large one to redo. `skip_state` leaves out the resume state (`trainer_state/`): the model files only.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StoreError(f"local step folder {str(folder)!r} does not exist or is not a folder")
    # emtune's output marker (a pulled step carries one) says who wrote the folder; it is not a model file.
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.relative_to(folder).as_posix() != OUTPUT_MARKER
        and not (skip_state and is_state_path(p.relative_to(folder).as_posix()))
    )
    if any(path.relative_to(folder).as_posix() == MANIFEST for path in paths):
        raise StoreError(f"local step folder {str(folder)!r} holds a file named {MANIFEST}, a name the store reserves")
    found = [
        (path, FileEntry(path.relative_to(folder).as_posix(), path.stat().st_size, digest))
        for path, digest in zip(paths, sha256_files(paths), strict=True)
    ]
    if not found:
        raise StoreError(f"local step folder {str(folder)!r} is empty; nothing to push")
    return sorted(found, key=lambda item: (item[1].size, item[1].path))
