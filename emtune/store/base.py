"""The checkpoint-store protocol, written once over a handful of storage primitives.

Layout under a store root: `step-N/<files...>`, then `step-N/manifest.json` once every file is in place,
then `latest` (the newest committed step number). A step without a manifest is incomplete: it is never
listed as complete, resumed from or evaluated.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emtune.errors import StoreError
from emtune.fsutil import atomic_dir, check_output
from emtune.store.manifest import MANIFEST, FileEntry, Manifest, scan_step_dir, sha256_files

log = logging.getLogger(__name__)

LATEST = "latest"
_MANIFEST_KEY = re.compile(rf"^step-(\d+)/{re.escape(MANIFEST)}$")
_STEP_KEY = re.compile(r"^step-(\d+)/")


@dataclass(frozen=True)
class PushResult:
    uri: str
    uploaded: int  # files sent
    skipped: int  # files already present with the same sha256
    uploaded_bytes: int
    already_complete: bool  # the step was committed before this push, with the same files


@dataclass(frozen=True)
class StepListing:
    step: int
    complete: bool
    files: int  # objects present under the step, manifest included
    bytes: int


class CheckpointStore(ABC):
    """A place step folders are pushed to and pulled from; `file://`, plain paths and `s3://`."""

    def __init__(self, root_uri: str) -> None:
        self.root_uri = root_uri.rstrip("/")

    def local_inputs(self) -> list[Path]:
        """Local folders the store lives in, which an output (a pull) must keep away from; none for S3."""
        return []

    # ----------------------------------------------------------------------- storage primitives
    @abstractmethod
    def _list(self, prefix: str) -> dict[str, int]:
        """Every object whose key starts with `prefix` (relative to the root), with its size."""

    @abstractmethod
    def _get_bytes(self, key: str) -> bytes | None:
        """A small object's content, or None when it does not exist."""

    @abstractmethod
    def _put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write a small object; with `if_absent`, return False instead of replacing an existing one."""

    @abstractmethod
    def _recorded_sha256(self, key: str) -> str | None:
        """The sha256 an object was uploaded with, if the store can tell cheaply; None otherwise."""

    @abstractmethod
    def _upload(self, items: list[tuple[Path, str, FileEntry]]) -> None:
        """Send local files to keys; each object appears whole or not at all."""

    @abstractmethod
    def _download(self, items: list[tuple[str, Path]]) -> None:
        """Fetch objects into local files."""

    @abstractmethod
    def _stored_sha256(self, key: str) -> str:
        """The sha256 of the object's bytes as stored now (reads the whole object)."""

    @abstractmethod
    def _delete(self, keys: list[str]) -> None:
        """Delete objects (missing ones are fine)."""

    def _discard_partial_uploads(self, prefix: str) -> None:
        """Drop unfinished uploads under `prefix` (multipart on S3); nothing to do elsewhere."""
        return None

    # ---------------------------------------------------------------------------------- naming
    @staticmethod
    def step_key(step: int) -> str:
        return f"step-{step}"

    def uri_of(self, key: str) -> str:
        return f"{self.root_uri}/{key}"

    def step_uri(self, step: int) -> str:
        return self.uri_of(self.step_key(step))

    # ---------------------------------------------------------------------------------- reading
    def listing(self) -> list[StepListing]:
        """Every step with anything in the store, complete or not, ascending."""
        per_step: dict[int, list[int]] = {}
        complete: set[int] = set()
        for key, size in self._list("").items():
            match = _STEP_KEY.match(key)
            if not match:
                continue
            step = int(match.group(1))
            per_step.setdefault(step, []).append(size)
            if _MANIFEST_KEY.match(key):
                complete.add(step)
        return [StepListing(s, s in complete, len(sizes), sum(sizes)) for s, sizes in sorted(per_step.items())]

    def complete_steps(self) -> list[int]:
        return sorted(int(m.group(1)) for key in self._list("") if (m := _MANIFEST_KEY.match(key)))

    def latest(self) -> int | None:
        """The newest complete step: the `latest` pointer when its manifest exists, else a listing."""
        pointer = self._read_pointer()
        if pointer is not None and self._get_bytes(f"{self.step_key(pointer)}/{MANIFEST}") is not None:
            return pointer
        steps = self.complete_steps()
        return steps[-1] if steps else None

    def read_manifest(self, step: int) -> Manifest:
        manifest = self._manifest_or_none(step)
        if manifest is None:
            raise StoreError(f"step {step} in {self.root_uri} has no {MANIFEST}: it is missing or incomplete")
        return manifest

    def _manifest_or_none(self, step: int) -> Manifest | None:
        key = f"{self.step_key(step)}/{MANIFEST}"
        raw = self._get_bytes(key)
        if raw is None:
            return None
        manifest = Manifest.from_json(raw, self.uri_of(key))
        if manifest.step != step:
            raise StoreError(f"manifest {self.uri_of(key)} names step {manifest.step}, expected {step}")
        return manifest

    def _read_pointer(self) -> int | None:
        raw = self._get_bytes(LATEST)
        if raw is None:
            return None
        try:
            return int(raw.decode().strip())
        except ValueError:
            log.warning("ignoring %s: %r is not a step number", self.uri_of(LATEST), raw[:40])
            return None

    # ----------------------------------------------------------------------------------- push
    def push(self, local_step_dir: Path, step: int, *, run_id: str, config_hash: str, metrics: dict[str, Any]) -> str:
        """Upload a local step folder and commit it; returns the step's URI."""
        return self.upload_step(local_step_dir, step, run_id=run_id, config_hash=config_hash, metrics=metrics).uri

    def upload_step(
        self, local_step_dir: Path, step: int, *, run_id: str, config_hash: str, metrics: dict[str, Any]
    ) -> PushResult:
        """Files (skipping those already present with the same sha256), then the manifest, then `latest`."""
        entries = scan_step_dir(local_step_dir)
        manifest = Manifest(step, run_id, config_hash, [entry for _, entry in entries], metrics)
        uri = self.step_uri(step)
        committed = self._manifest_or_none(step)
        if committed is not None:
            self._check_same(committed, manifest)
            log.info("%s is already complete with the same files; nothing to push", uri)
            return PushResult(uri, 0, len(entries), 0, already_complete=True)

        prefix = f"{self.step_key(step)}/"
        present = self._list(prefix)
        todo = [
            (path, prefix + entry.path, entry)
            for path, entry in entries
            if not (
                present.get(prefix + entry.path) == entry.size
                and self._recorded_sha256(prefix + entry.path) == entry.sha256
            )
        ]
        self._upload(todo)
        if not self._put_bytes(prefix + MANIFEST, manifest.to_json().encode(), if_absent=True):
            # Another writer committed this step between our check and our manifest.
            self._check_same(self.read_manifest(step), manifest)
        self._advance_pointer(step)
        sent = sum(entry.size for _, _, entry in todo)
        log.info(
            "pushed %s: %d files sent (%.1f MB), %d already present",
            uri,
            len(todo),
            sent / 1e6,
            len(entries) - len(todo),
        )
        return PushResult(uri, len(todo), len(entries) - len(todo), sent, already_complete=False)

    def _check_same(self, committed: Manifest, ours: Manifest) -> None:
        if not committed.same_files(ours):
            raise StoreError(
                f"{self.step_uri(ours.step)} is already committed by run {committed.run_id!r} with different files; "
                "refusing to overwrite it (push to another prefix or remove that step first)"
            )

    def _advance_pointer(self, step: int) -> None:
        current = self._read_pointer()
        if current is None or step >= current:
            self._put_bytes(LATEST, f"{step}\n".encode())

    # ----------------------------------------------------------------------------------- pull
    def pull(self, step: int, local_dir: Path, *, overwrite: bool = False) -> Path:
        """Download a complete step into `local_dir`, every file checked against its manifest.

        An existing non-empty `local_dir` is replaced only with `overwrite` and only if emtune wrote it.
        """
        local_dir = Path(local_dir)
        check_output(local_dir, self.local_inputs(), overwrite=overwrite)
        manifest = self.read_manifest(step)
        prefix = f"{self.step_key(step)}/"
        self._check_present(manifest, self._list(prefix))
        with atomic_dir(local_dir, "ckpt pull", inputs=self.local_inputs(), overwrite=overwrite) as tmp:
            self._download([(prefix + entry.path, tmp / entry.path) for entry in manifest.files])
            paths = [tmp / entry.path for entry in manifest.files]
            for entry, path, digest in zip(manifest.files, paths, sha256_files(paths), strict=True):
                self._check_entry(step, entry, path.stat().st_size, digest)
        log.info("pulled %s into %s (%.1f MB)", self.step_uri(step), local_dir, manifest.total_bytes / 1e6)
        return local_dir

    def verify(self, step: int) -> None:
        """Re-read every object of a complete step and check it against the manifest."""
        manifest = self.read_manifest(step)
        prefix = f"{self.step_key(step)}/"
        present = self._list(prefix)
        self._check_present(manifest, present)
        for entry in manifest.files:
            self._check_entry(step, entry, present[prefix + entry.path], self._stored_sha256(prefix + entry.path))

    def _check_present(self, manifest: Manifest, present: dict[str, int]) -> None:
        prefix = f"{self.step_key(manifest.step)}/"
        for entry in manifest.files:
            size = present.get(prefix + entry.path)
            if size is None:
                raise StoreError(f"{self.uri_of(prefix + entry.path)} is listed in the manifest but missing")
            if size != entry.size:
                raise StoreError(f"{self.uri_of(prefix + entry.path)} has {size} bytes, the manifest says {entry.size}")

    def _check_entry(self, step: int, entry: FileEntry, size: int, sha256: str) -> None:
        where = self.uri_of(f"{self.step_key(step)}/{entry.path}")
        if size != entry.size:
            raise StoreError(f"{where} has {size} bytes, the manifest says {entry.size}")
        if sha256 != entry.sha256:
            raise StoreError(
                f"{where} is corrupt: sha256 {sha256[:12]}… differs from the manifest's {entry.sha256[:12]}…"
            )

    # ---------------------------------------------------------------------------------- delete
    def remove(self, step: int) -> None:
        """Delete a step: manifest first, so it stops counting as complete before its files go."""
        prefix = f"{self.step_key(step)}/"
        keys = list(self._list(prefix))
        self._delete([key for key in keys if key == prefix + MANIFEST])
        self._delete([key for key in keys if key != prefix + MANIFEST])
        self._discard_partial_uploads(prefix)
        if self._read_pointer() == step:
            remaining = self.complete_steps()
            if remaining:
                self._put_bytes(LATEST, f"{remaining[-1]}\n".encode())
            else:
                self._delete([LATEST])
        log.info("removed %s (%d objects)", self.step_uri(step), len(keys))

    def apply_retention(self, keep_last: int, protect: set[int] | frozenset[int] = frozenset()) -> list[int]:
        """Remove complete steps older than the newest `keep_last`, never the newest one or a protected one."""
        if keep_last < 1:
            raise StoreError(f"keep_last must be at least 1, got {keep_last}")
        steps = self.complete_steps()
        kept = set(steps[-keep_last:]) | set(protect)
        doomed = [step for step in steps if step not in kept]
        for step in doomed:
            self.remove(step)
        return doomed
