"""Write-then-rename helpers (a path that exists is complete), the output guard every folder-writing
command goes through (emtune never deletes a folder it did not write, nor one of a command's own inputs),
the one-writer lock of an output folder, and the one JSON-lines reader."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from emtune.errors import DataError, OutputError
from emtune.faults import pause_point

# Written into every output folder emtune creates; `--overwrite` replaces only folders that carry it.
OUTPUT_MARKER = ".emtune-output.json"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkdtemp/mkstemp create private (0700/0600) entries; outputs should get the usual permissions, so pods
# running as another user (KFP, Kubeflow Trainer) can read what a step wrote.
_DIR_MODE = 0o777 & ~_current_umask()
_FILE_MODE = 0o666 & ~_current_umask()


def check_output(out: Path, inputs: Iterable[Path | str] = (), *, overwrite: bool = False) -> None:
    """Refuse an output folder that would destroy something the user did not ask emtune to delete.

    Refused: a file; a folder that is, holds or lies inside one of `inputs` (the files and folders the command
    reads); an existing non-empty folder unless `overwrite`; and, even with `overwrite`, one without emtune's
    marker (not written by emtune).
    """
    out = Path(out)
    target = out.resolve()
    if target.exists() and not target.is_dir():
        raise OutputError(f"output {str(out)!r} is a file; give a folder path (new or empty) for the output")
    for each in inputs:
        source = Path(each).resolve()
        if source == target:
            raise OutputError(f"output {str(out)!r} is the input {str(each)!r}; write the output to another folder")
        if target in source.parents:
            raise OutputError(f"output {str(out)!r} holds the input {str(each)!r}; write the output elsewhere")
        if source in target.parents and source.is_dir():
            raise OutputError(f"output {str(out)!r} lies inside the input {str(each)!r}; write the output elsewhere")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not overwrite:
        raise OutputError(f"output folder {str(out)!r} exists and is not empty; choose another one or pass --overwrite")
    if not (target / OUTPUT_MARKER).is_file():
        raise OutputError(
            f"output folder {str(out)!r} was not written by emtune (it has no {OUTPUT_MARKER}); "
            "--overwrite replaces only emtune's own outputs: choose another folder"
        )


def mark_output(folder: Path, command: str) -> None:
    """Record that emtune wrote `folder`, so a later `--overwrite` may replace it."""
    import emtune  # the package root, for its version; imported here as fsutil sits below it

    stamp = {
        "written_by": f"emtune {emtune.__version__}",
        "command": command,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(Path(folder) / OUTPUT_MARKER, stamp)


def make_dir(folder: Path) -> None:
    """mkdir -p, with the path mistakes (a file in the way, no permission) as one OutputError line."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create folder {str(folder)!r}: a file of that name is in the way") from None
    except NotADirectoryError:
        raise OutputError(f"cannot create folder {str(folder)!r}: a parent of it is a file") from None
    except PermissionError:
        raise OutputError(f"cannot create folder {str(folder)!r}: permission denied; choose a writable place") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"folder {str(folder)!r} is not writable; choose a writable place")


def check_can_create(folder: Path) -> None:
    """Fail now, in one line, if `folder` could not be created or written later (nothing is created here)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {str(folder)!r} is a file; give a folder path")
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"cannot create folder {str(folder)!r}: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create or write folder {str(folder)!r}: {str(existing)!r} is not writable")


@contextlib.contextmanager
def atomic_dir(
    final: Path, command: str, *, inputs: Iterable[Path | str] = (), overwrite: bool = False, mark: bool = True
) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; rename it into place, marked as emtune's, only if the block succeeds.

    `final` passes `check_output` first (so an existing folder is replaced only with `overwrite` and only if
    emtune wrote it). On any exception the temporary folder is removed, so nothing half-written is ever left
    under the final name, and an existing `final` is untouched. `mark=False` is for a piece of a larger output
    that carries the marker itself (an eval pair inside its eval folder).
    """
    final = Path(final)
    check_output(final, inputs, overwrite=overwrite)
    make_dir(final.parent)
    remove_stale_siblings(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{_writer()}-", dir=final.parent))
    os.chmod(tmp, _DIR_MODE)
    try:
        yield tmp
        pause_point("output-written")  # written, not yet renamed into place
        if mark:
            mark_output(tmp, command)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_output_dir(out: Path, command: str, *, inputs: Iterable[Path | str] = (), overwrite: bool = False) -> Path:
    """An output folder a command fills piece by piece (each piece atomic): guarded as `atomic_dir` guards,
    emptied when `overwrite` replaces an earlier emtune output, and marked as emtune's from the start."""
    out = Path(out)
    check_output(out, inputs, overwrite=overwrite)
    remove_stale_siblings(out)
    if out.is_dir() and any(out.iterdir()):
        shutil.rmtree(_move_aside(out))
    make_dir(out)
    mark_output(out, command)
    return out


def _writer() -> str:
    """Who writes a temporary sibling: host and pid, so a later command can tell a dead writer's leftovers."""
    return f"{socket.gethostname()}-{os.getpid()}"


_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?:partial|old)-(?P<host>.+)-(?P<pid>\d+)-[^-]+$")


def remove_stale_siblings(final: Path) -> list[Path]:
    """Remove the temporary siblings of `final` that a killed command left (`.NAME.partial-*`, `.NAME.old-*`):
    those written on this host by a process that no longer exists; a live writer's are left alone."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    stale = []
    for sibling in final.parent.iterdir():
        match = _SIBLING.match(sibling.name)
        if match is None or match["name"] != final.name or match["host"] != socket.gethostname():
            continue
        if not _process_exists(int(match["pid"])) and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)
            stale.append(sibling)
    return stale


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _move_aside(folder: Path) -> Path:
    """Rename `folder` into a hidden sibling (returned) so that its name never holds a half-deleted folder."""
    holder = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-{_writer()}-", dir=folder.parent))
    os.replace(folder, holder / folder.name)
    return holder


def _replace_dir(new: Path, final: Path) -> None:
    """Rename `new` to `final`; an existing `final` (checked by the caller) is moved aside first, then removed."""
    if not final.exists():
        os.replace(new, final)
        return
    old = _move_aside(final)
    os.replace(new, final)
    shutil.rmtree(old)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary sibling and an atomic rename."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output {str(path)!r} is a folder; give a file path")
    make_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.chmod(tmp, _FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def parse_jsonl(text: str, where: str, *, skip_bad: bool = False) -> list[dict[str, Any]]:
    """The JSON objects of JSON-lines `text`, blank lines skipped. A line that is not a JSON object raises a
    DataError naming `where` and the line; with `skip_bad` (a file still being appended to, whose last line may
    be torn) it is skipped instead."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if skip_bad:
                continue
            raise DataError(f"{where} line {number} is not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            if skip_bad:
                continue
            raise DataError(f"{where} line {number} is a JSON {type(row).__name__}, not an object")
        rows.append(row)
    return rows


def read_jsonl(path: Path, *, skip_bad: bool = False) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (`parse_jsonl`); a file that does not exist yet holds none."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{str(path)!r} is not UTF-8 text; expected JSON lines") from None
    return parse_jsonl(text, repr(str(path)), skip_bad=skip_bad)


def lock_path(folder: Path) -> Path:
    """The lock file of an output folder: a hidden sibling, present only while a command holds it, so it survives
    `--overwrite` replacing the folder and is no part of the output."""
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def exclusive_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold the one-writer lock of `folder` for the block; while another holds it, refuse in one line naming the
    holder. flock: per open file, so a probe in the same process conflicts too; released by the kernel when the
    process dies, however it dies. The file is removed on release; a holder checks that the name still points at
    the file it locked, so one removed meanwhile is never taken for a held lock."""
    path = lock_path(folder)
    make_dir(path.parent)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            reason = exc.strerror
            raise OutputError(f"cannot create the lock {str(path)!r} of {what} {str(folder)!r}: {reason}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 500, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutputError(
                f"{what} {str(folder)!r} is in use by {holder}; wait for it to end or choose another folder"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # the previous holder removed it between our open and our lock: take the new one
    try:
        stamp = f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
        os.ftruncate(fd, 0)
        os.pwrite(fd, stamp.encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still holding it: a waiting opener then sees another inode and retries
        os.close(fd)


def is_locked(folder: Path) -> bool:
    """Whether a live process holds `folder`'s lock (a record saying "running" without one is stale)."""
    try:
        fd = os.open(lock_path(folder), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
