"""The embedded default store: a folder on a local or mounted file system."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from emtune.errors import StoreError
from emtune.store.base import CheckpointStore
from emtune.store.manifest import FileEntry, sha256_file

_PARTIAL = ".emtune-partial-"


class LocalStore(CheckpointStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        super().__init__(self.root.as_uri())

    def local_inputs(self) -> list[Path]:
        return [self.root]

    def _path(self, key: str) -> Path:
        return self.root / key

    def exists(self) -> bool:
        return self.root.is_dir()

    def _list(self, prefix: str) -> dict[str, int]:
        base = self._path(prefix) if prefix.endswith("/") else self.root
        if not base.is_dir():
            return {}
        found = {}
        for path in base.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            # Temporary files of writes in flight are not objects yet.
            if path.is_file() and _PARTIAL not in path.name and key.startswith(prefix):
                found[key] = path.stat().st_size
        return found

    def _get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise StoreError(f"cannot {action} in {self.root}: {exc.strerror or exc} ({exc.filename})") from None

    def _put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        with self._errors(f"write {key}"):
            return self._put_bytes_unchecked(key, data, if_absent=if_absent)

    def _put_bytes_unchecked(self, key: str, data: bytes, *, if_absent: bool) -> bool:
        final = self._path(key)
        tmp = self._temp_sibling(final)
        try:
            tmp.write_bytes(data)
            if if_absent:
                # link() fails if the name exists: an atomic create-if-absent on POSIX file systems.
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, final)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _recorded_sha256(self, key: str) -> str | None:
        return sha256_file(self._path(key))

    def _upload(self, items: list[tuple[Path, str, FileEntry]]) -> None:
        with self._errors("write step files"):
            for source, key, _ in items:
                self._copy_whole(source, self._path(key))

    def _download(self, items: list[tuple[str, Path]]) -> None:
        with self._errors("read step files"):
            for key, target in items:
                self._copy_whole(self._path(key), target)

    def _stored_sha256(self, key: str) -> str:
        return sha256_file(self._path(key))

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()
        for key in keys:
            self._prune_empty_parents(self._path(key).parent)

    def _prune_empty_parents(self, folder: Path) -> None:
        while folder != self.root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    @staticmethod
    def _temp_sibling(final: Path) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}{_PARTIAL}", dir=final.parent)
        os.close(fd)
        return Path(name)

    def _copy_whole(self, source: Path, target: Path) -> None:
        tmp = self._temp_sibling(target)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
