"""The checkpoint-store protocol, written once over a handful of storage primitives.

Layout under a store root: `step-N/files-<digest>/<model files...>`, then `step-N/manifest.json`, the commit,
naming that folder; then `latest` (the newest committed step number). A step without a manifest is incomplete:
it is never listed as complete, resumed from or evaluated, and the next push of it replaces it. A step's resume
state (optimizer, scheduler, RNG, data position) is a file set of its own under `state/step-N/files-<digest>/`,
uploaded before the step and committed by the step's manifest naming it: evaluation never moves it, and only
the newest steps keep it. Upload folders are named by their content (`manifest.upload_name`): two writers of
one step never write the same key with different bytes, so neither can damage the other's committed step.
Stores written in format 1 (files directly under `step-N/`) are still read.
"""

from __future__ import annotations

import logging
import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emtune.errors import StoreError
from emtune.faults import pause_point
from emtune.fsutil import OUTPUT_MARKER, atomic_dir, check_output
from emtune.store.integrity import verify_sealed
from emtune.store.layout import REPORT_DIR, STATE_DIR, STEP_PATTERN, is_state_path, step_name
from emtune.store.manifest import MANIFEST, FileEntry, Manifest, scan_step_dir, sha256_files, upload_name

log = logging.getLogger(__name__)

LATEST = "latest"
STATE_PREFIX = "state"
PROBE_PREFIX = ".emtune-probe"
_MANIFEST_KEY = re.compile(rf"^{STEP_PATTERN}/{re.escape(MANIFEST)}$")
_STATE_KEY = re.compile(rf"^{STATE_PREFIX}/{STEP_PATTERN}/")
_STEP_KEY = re.compile(rf"^{STEP_PATTERN}/")


@dataclass(frozen=True)
class PushResult:
    uri: str
    uploaded: int  # files sent
    skipped: int  # files already present with the same sha256
    uploaded_bytes: int  # model and resume state together
    already_complete: bool  # the step was committed before this push, with the same files
    state_bytes: int = 0  # the resume state's share of uploaded_bytes


@dataclass(frozen=True)
class StepListing:
    step: int
    complete: bool
    files: int  # objects present under the step, manifest included (resume state not counted)
    bytes: int
    state: bool = False  # the step's resume state is committed too


@dataclass(frozen=True)
class _SetResult:
    uploaded: int
    skipped: int
    sent_bytes: int
    already_complete: bool


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
        return step_name(step)

    def uri_of(self, key: str) -> str:
        return f"{self.root_uri}/{key}"

    def step_uri(self, step: int) -> str:
        return self.uri_of(self.step_key(step))

    @classmethod
    def state_key(cls, step: int) -> str:
        return f"{STATE_PREFIX}/{cls.step_key(step)}"

    # ---------------------------------------------------------------------------------- reading
    def listing(self) -> list[StepListing]:
        """Every step with anything in the store, complete or not, ascending. Objects under state/step-N/ alone
        (a push stopped after its resume state) list step N as incomplete, so `ckpt rm` can remove them."""
        per_step: dict[int, list[int]] = {}
        for key, size in self._list("").items():
            if match := _STEP_KEY.match(key):
                per_step.setdefault(int(match.group(1)), []).append(size)
            elif match := _STATE_KEY.match(key):
                per_step.setdefault(int(match.group(1)), [])
        complete = set(self.complete_steps())
        return [
            StepListing(s, s in complete, len(sizes), sum(sizes), s in complete and self.has_state(s))
            for s, sizes in sorted(per_step.items())
        ]

    def exists(self) -> bool:
        """Whether anything is stored under the root (a store is created by its first push)."""
        return bool(self._list(""))

    def complete_steps(self) -> list[int]:
        return sorted(int(m.group(1)) for key in self._list("") if (m := _MANIFEST_KEY.match(key)))

    def state_steps(self) -> list[int]:
        """Steps whose resume state is committed (named by the step's manifest and itself complete), ascending."""
        return [step for step in self.complete_steps() if self.has_state(step)]

    def is_complete(self, step: int) -> bool:
        return self._get_bytes(f"{self.step_key(step)}/{MANIFEST}") is not None

    def has_state(self, step: int) -> bool:
        manifest = self._manifest_or_none(step)
        return manifest is not None and self._state_set(step, manifest) is not None

    def _files_prefix(self, step: int, manifest: Manifest) -> str:
        """Where a committed step's model files are: its upload folder (format 2) or the step's prefix."""
        return f"{self.step_key(step)}/{manifest.upload}/" if manifest.upload else f"{self.step_key(step)}/"

    def _state_set(self, step: int, manifest: Manifest) -> tuple[str, Manifest] | None:
        """The committed resume state of a step (its key prefix and manifest), or None.

        Format 2: the upload folder the step's manifest names, so a state whose step was never committed is an
        incomplete upload, not a commit. Format 1: the state's own manifest under state/step-N/.
        """
        if manifest.state_upload:
            prefix = f"{self.state_key(step)}/{manifest.state_upload}"
        elif manifest.format < 2:
            prefix = self.state_key(step)
        else:
            return None
        state = self._manifest_or_none(step, prefix)
        return None if state is None else (f"{prefix}/", state)

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

    def _manifest_or_none(self, step: int, key_prefix: str | None = None) -> Manifest | None:
        key = f"{key_prefix or self.step_key(step)}/{MANIFEST}"
        raw = self._get_bytes(key)
        if raw is None:
            return None
        manifest = Manifest.from_json(raw, self.uri_of(key))
        if manifest.step != step:
            raise StoreError(f"manifest {self.uri_of(key)} names step {manifest.step}, expected {step}")
        return manifest

    def probe(self) -> None:
        """Write, read back and delete a small object: a store that cannot take checkpoints fails now."""
        key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}"
        payload = b"emtune store probe\n"
        self._put_bytes(key, payload)
        if self._get_bytes(key) != payload:
            raise StoreError(f"{self.root_uri} did not return the probe object {key} that was just written to it")
        self._delete([key])

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
    def push(
        self,
        local_step_dir: Path,
        step: int,
        *,
        run_id: str,
        config_hash: str,
        metrics: dict[str, Any],
        kind: str = "step",
        with_state: bool = False,
    ) -> str:
        """Upload a local step folder and commit it; returns the step's URI."""
        return self.upload_step(
            local_step_dir,
            step,
            run_id=run_id,
            config_hash=config_hash,
            metrics=metrics,
            kind=kind,
            with_state=with_state,
        ).uri

    def upload_step(
        self,
        local_step_dir: Path,
        step: int,
        *,
        run_id: str,
        config_hash: str,
        metrics: dict[str, Any],
        kind: str = "step",
        with_state: bool = False,
    ) -> PushResult:
        """The resume state if asked, the model files (never `trainer_state/`), the step's manifest (the commit,
        naming both), then `latest`.

        Each file set goes into an upload folder named by its content, so a second writer never overwrites a
        byte of a committed step, and a step whose manifest is absent is an incomplete upload that the next push
        replaces (its leftovers are removed once a push of that step commits).
        """
        local_step_dir = Path(local_step_dir)
        entries = scan_step_dir(local_step_dir, skip_state=True)
        files = [entry for _, entry in entries]
        state_entries = scan_step_dir(local_step_dir / STATE_DIR) if with_state else []
        # Bytes changed since the seal must not be certified by a manifest: checked against checkpoint.json.
        hashed = {entry.path: (entry.size, entry.sha256) for entry in files}
        hashed.update({f"{STATE_DIR}/{entry.path}": (entry.size, entry.sha256) for _, entry in state_entries})
        verify_sealed(local_step_dir, with_state=with_state, actual=hashed)
        committed = self._manifest_or_none(step)
        if committed is not None:
            self._check_same(committed, files, self.step_key(step))
            if not with_state or self._state_set(step, committed) is not None:
                self._advance_pointer(step)
                log.info("%s is already complete with the same files; nothing to push", self.step_uri(step))
                return PushResult(self.step_uri(step), 0, len(entries), 0, True)
        state = _SetResult(0, 0, 0, True)
        state_upload = None
        if with_state:
            state_files = [entry for _, entry in state_entries]
            state_upload = upload_name(state_files)
            state_manifest = Manifest(step, run_id, config_hash, state_files, {}, kind="state", upload=state_upload)
            state = self._upload_set(f"{self.state_key(step)}/{state_upload}", state_entries, state_manifest)
        upload = committed.upload if committed is not None else upload_name(files)
        model = _SetResult(0, len(entries), 0, True)
        if committed is None:
            model = self._upload_files(f"{self.step_key(step)}/{upload}/", entries)
        manifest = Manifest(
            step, run_id, config_hash, files, metrics, kind=kind, upload=upload, state_upload=state_upload
        )
        pause_point("push")  # every file is in place, the commit not yet made
        self._commit(step, manifest, replace=committed is not None)
        self._discard_leftovers(step, manifest)
        self._advance_pointer(step)
        uri = self.step_uri(step)
        log.info(
            "pushed %s%s: %d files sent (%.1f MB), %d already present",
            uri,
            " with its resume state" if with_state else "",
            model.uploaded + state.uploaded,
            (model.sent_bytes + state.sent_bytes) / 1e6,
            model.skipped + state.skipped,
        )
        return PushResult(
            uri,
            model.uploaded + state.uploaded,
            model.skipped + state.skipped,
            model.sent_bytes + state.sent_bytes,
            False,
            state.sent_bytes,
        )

    def _upload_files(self, prefix: str, entries: list[tuple[Path, FileEntry]]) -> _SetResult:
        """Send the files not already present under `prefix` with the same size and sha256 (a rerun resumes)."""
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
        sent = sum(entry.size for _, _, entry in todo)
        return _SetResult(len(todo), len(entries) - len(todo), sent, already_complete=False)

    def _upload_set(self, key_prefix: str, entries: list[tuple[Path, FileEntry]], manifest: Manifest) -> _SetResult:
        """A file set in its own folder, then the set's manifest (a resume state, committed by its step's)."""
        if self._get_bytes(f"{key_prefix}/{MANIFEST}") is not None:  # the same content, pushed before
            return _SetResult(0, len(entries), 0, already_complete=True)
        result = self._upload_files(f"{key_prefix}/", entries)
        self._put_bytes(f"{key_prefix}/{MANIFEST}", manifest.to_json().encode())
        return result

    def _commit(self, step: int, manifest: Manifest, *, replace: bool) -> None:
        """Write the step's manifest: if absent, or (`replace`) over a committed one with the same model files
        to add its resume state. A writer that lost the race learns whether the winner's files are its own."""
        key = f"{self.step_key(step)}/{MANIFEST}"
        if replace:
            self._put_bytes(key, manifest.to_json().encode())
        elif not self._put_bytes(key, manifest.to_json().encode(), if_absent=True):
            raced = self._manifest_or_none(step)
            if raced is None:
                raise StoreError(f"{self.uri_of(key)} was written and removed while this push committed; push again")
            self._check_same(raced, manifest.files, self.step_key(step))

    def _discard_leftovers(self, step: int, manifest: Manifest) -> None:
        """Objects under the step's prefixes that its committed manifest does not point to: incomplete uploads
        of earlier (stopped) pushes, or of another writer that will find the step committed."""
        keep = [f"{self.step_key(step)}/{MANIFEST}", self._files_prefix(step, manifest)]
        if manifest.state_upload:
            keep.append(f"{self.state_key(step)}/{manifest.state_upload}/")
        doomed = [
            key
            for prefix in (f"{self.step_key(step)}/", f"{self.state_key(step)}/")
            for key in self._list(prefix)
            if not any(key == kept or (kept.endswith("/") and key.startswith(kept)) for kept in keep)
        ]
        if doomed:
            self._delete(doomed)
            log.info("removed %d objects of incomplete uploads of %s", len(doomed), self.step_uri(step))

    def _check_same(self, committed: Manifest, files: list[FileEntry], key_prefix: str) -> None:
        if sorted(committed.files, key=lambda e: e.path) != sorted(files, key=lambda e: e.path):
            raise StoreError(
                f"{self.uri_of(key_prefix)} is already committed by run {committed.run_id!r} with different files; "
                "refusing to overwrite it (push to another prefix or remove that step first)"
            )

    def _advance_pointer(self, step: int) -> None:
        current = self._read_pointer()
        if current is None or step >= current:
            self._put_bytes(LATEST, f"{step}\n".encode())

    # ---------------------------------------------------------------------------------- the report
    def push_report(self, folder: Path) -> str:
        """Upload a run's report folder (results.json, report.md/html, plots: small files) under `report/`, where
        the dashboard reads a cluster run's evaluations; returns its URI."""
        folder = Path(folder)
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != OUTPUT_MARKER):
            self._put_bytes(f"{REPORT_DIR}/{path.relative_to(folder).as_posix()}", path.read_bytes())
        return self.uri_of(REPORT_DIR)

    def pull_report(self, local_dir: Path) -> Path | None:
        """Download the run's report folder into `local_dir` (a cache, overwritten); None while there is none."""
        prefix = f"{REPORT_DIR}/"
        keys = sorted(self._list(prefix))
        if not keys:
            return None
        self._download([(key, Path(local_dir) / key.removeprefix(prefix)) for key in keys])
        return Path(local_dir)

    # ----------------------------------------------------------------------------------- pull
    def pull(self, step: int, local_dir: Path, *, with_state: bool = False, overwrite: bool = False) -> Path:
        """Download a complete step's model files into `local_dir`, each checked against its manifest; with
        `with_state`, its resume state too, into `trainer_state/`.

        An existing non-empty `local_dir` is replaced only with `overwrite` and only if emtune wrote it.
        """
        local_dir = Path(local_dir)
        check_output(local_dir, self.local_inputs(), overwrite=overwrite)
        manifest = self.read_manifest(step)
        prefix = self._files_prefix(step, manifest)
        # Steps pushed before resume state had a prefix of its own list it among their files.
        model_files = [entry for entry in manifest.files if not is_state_path(entry.path)]
        plan = [(prefix + entry.path, entry.path, entry) for entry in model_files]
        self._check_present(prefix, model_files, self._list(prefix))
        if with_state:
            plan += self._state_plan(step, manifest)
        with atomic_dir(local_dir, "ckpt pull", inputs=self.local_inputs(), overwrite=overwrite) as tmp:
            self._download([(key, tmp / relative) for key, relative, _ in plan])
            paths = [tmp / relative for _, relative, _ in plan]
            for (key, _, entry), path, digest in zip(plan, paths, sha256_files(paths), strict=True):
                self._check_entry(key, entry, path.stat().st_size, digest)
        pulled = sum(entry.size for _, _, entry in plan)
        log.info("pulled %s into %s (%.1f MB)", self.step_uri(step), local_dir, pulled / 1e6)
        return local_dir

    def _state_plan(self, step: int, manifest: Manifest) -> list[tuple[str, str, FileEntry]]:
        state_set = self._state_set(step, manifest)
        if state_set is not None:
            prefix, state = state_set
            self._check_present(prefix, state.files, self._list(prefix))
            return [(prefix + entry.path, f"{STATE_DIR}/{entry.path}", entry) for entry in state.files]
        inline = manifest.files_under_state()
        if not inline:
            raise StoreError(f"{self.step_uri(step)} has no resume state in {self.root_uri}")
        prefix = self._files_prefix(step, manifest)
        return [(prefix + entry.path, entry.path, entry) for entry in inline]

    def verify(self, step: int) -> None:
        """Re-read every object of a complete step (and of its resume state, if kept) against its manifest."""
        manifest = self.read_manifest(step)
        sets = [(self._files_prefix(step, manifest), manifest)]
        state_set = self._state_set(step, manifest)
        if state_set is not None:
            sets.append(state_set)
        for prefix, each in sets:
            present = self._list(prefix)
            self._check_present(prefix, each.files, present)
            for entry in each.files:
                key = prefix + entry.path
                self._check_entry(key, entry, present[key], self._stored_sha256(key))

    def repair(self, step: int, local_step_dir: Path) -> list[str]:
        """Compare a committed step's objects with its manifest (size, and the sha256 each was uploaded with:
        a HEAD on S3) and upload again, from an intact local copy, each one missing or changed; returns their
        keys. The local copy must hold the manifest's bytes (checked), so the store is never "repaired" worse."""
        manifest = self.read_manifest(step)
        prefix = self._files_prefix(step, manifest)
        present = self._list(prefix)
        damaged = [
            entry
            for entry in manifest.files
            if present.get(prefix + entry.path) != entry.size
            or self._recorded_sha256(prefix + entry.path) != entry.sha256
        ]
        if not damaged:
            return []
        sources = [Path(local_step_dir) / entry.path for entry in damaged]
        if any(not path.is_file() for path in sources) or [
            (path.stat().st_size, digest) for path, digest in zip(sources, sha256_files(sources), strict=True)
        ] != [(entry.size, entry.sha256) for entry in damaged]:
            raise StoreError(
                f"{self.step_uri(step)} is damaged ({', '.join(e.path for e in damaged)}) and {str(local_step_dir)!r} "
                "does not hold the committed bytes to repair it from; remove the step (`emtune ckpt rm`), push it again"
            )
        self._upload([(path, prefix + entry.path, entry) for path, entry in zip(sources, damaged, strict=True)])
        log.warning(
            "repaired %s: uploaded %s again from %s", self.step_uri(step), [e.path for e in damaged], local_step_dir
        )
        return [prefix + entry.path for entry in damaged]

    def _check_present(self, prefix: str, files: list[FileEntry], present: dict[str, int]) -> None:
        for entry in files:
            size = present.get(prefix + entry.path)
            if size is None:
                raise StoreError(f"{self.uri_of(prefix + entry.path)} is listed in the manifest but missing")
            if size != entry.size:
                raise StoreError(f"{self.uri_of(prefix + entry.path)} has {size} bytes, the manifest says {entry.size}")

    def _check_entry(self, key: str, entry: FileEntry, size: int, sha256: str) -> None:
        where = self.uri_of(key)
        if size != entry.size:
            raise StoreError(f"{where} has {size} bytes, the manifest says {entry.size}")
        if sha256 != entry.sha256:
            raise StoreError(
                f"{where} is corrupt: sha256 {sha256[:12]}… differs from the manifest's {entry.sha256[:12]}…"
            )

    # ---------------------------------------------------------------------------------- delete
    def remove(self, step: int) -> None:
        """Delete a step, complete or not: manifest first, so it stops counting as complete before its files go;
        then its files, its resume state and any incomplete upload of it."""
        removed = self._remove_prefix(self.step_key(step))
        removed += self._remove_prefix(self.state_key(step))
        if self._read_pointer() == step:
            remaining = self.complete_steps()
            if remaining:
                self._put_bytes(LATEST, f"{remaining[-1]}\n".encode())
            else:
                self._delete([LATEST])
        log.info("removed %s (%d objects)", self.step_uri(step), removed)

    def remove_state(self, step: int) -> None:
        """Delete a step's resume state (manifests first); the step stays, for evaluation."""
        if self._remove_prefix(self.state_key(step)):
            log.info("removed the resume state of %s", self.step_uri(step))

    def _remove_prefix(self, key_prefix: str) -> int:
        prefix = f"{key_prefix}/"
        keys = list(self._list(prefix))
        manifests = [key for key in keys if key.rsplit("/", 1)[-1] == MANIFEST]
        self._delete(manifests)
        self._delete([key for key in keys if key not in manifests])
        self._discard_partial_uploads(prefix)
        return len(keys)

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

    def apply_state_retention(self, keep: int, protect: set[int] | frozenset[int] = frozenset()) -> list[int]:
        """Keep the resume state of only the newest `keep` steps that have one (and of protected steps)."""
        if keep < 1:
            raise StoreError(f"keep must be at least 1, got {keep}")
        steps = self.state_steps()
        doomed = [step for step in steps[:-keep] if step not in protect]
        for step in doomed:
            self.remove_state(step)
        return doomed
