"""The `emtune` command: one sub-command per pipeline step, each a thin call into the library."""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
from typing import TextIO

from rich.console import Console

from emtune.cli.app import app, flags
from emtune.errors import EmtuneError
from emtune.interrupts import Stopped, handle_stop_signals

# Each module registers its commands on `app` when imported.
from emtune.cli import bench, benchmarks, ckpt, config, dashboard, eval, model, pipeline, prep, promote, report, train  # noqa: F401  isort: skip

_stderr = Console(stderr=True)
# Failures of the machine, not of emtune: one line with what to do, not a traceback. Outputs are written to a
# temporary sibling first, so nothing half-written is left under the output's name.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free space on that disk (or choose another) and run again",
    errno.EDQUOT: "the disk quota is used up; free space and run again",
    errno.EROFS: "that file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder this user can write",
}


class _StderrHandler(logging.StreamHandler):
    """One line per record on the sys.stderr of the moment (tests and notebooks swap it), so pod logs and
    pipes get plain lines; warnings and errors carry their level."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def _log_to_stderr() -> logging.Handler:
    handler = _StderrHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def main() -> None:
    """Console-script entry: user errors print one line and exit 2; bugs keep their traceback."""
    # The CLI draws its own progress; libraries' bars and per-rank chatter would drown it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handler = _log_to_stderr()
    for noisy in ("accelerate", "deepspeed", "DeepSpeed", "httpx", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # One warning per connection retry; the failure that matters is reported once, as an error.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    flags.debug = False
    try:
        with handle_stop_signals():  # SIGTERM (pre-emption) is handled like SIGINT
            app()  # usage errors: typer prints them and exits 2
    except EmtuneError as err:
        if flags.debug:
            raise
        _stderr.print(f"[red]error:[/red] {err}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
    except OSError as err:
        if err.errno not in _ENVIRONMENT_ERRNOS or flags.debug:
            raise
        where = f" ({err.filename})" if err.filename else ""
        _stderr.print(
            f"[red]error:[/red] {err.strerror or err}{where}; {_ENVIRONMENT_ERRNOS[err.errno]}",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
        sys.exit(2)
    except Stopped as stop:
        _stderr.print(
            f"[red]error:[/red] stopped by {stop.signal_name}; what was complete is kept (rerun, or train with "
            "--resume, to continue)",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
        _exit_now_if_threads_remain(128 + stop.signum)
        sys.exit(128 + stop.signum)
    finally:
        # Leave no global logging state behind for in-process callers (tests, notebooks).
        logging.getLogger().removeHandler(handler)


def _exit_now_if_threads_remain(code: int) -> None:
    """Work abandoned at the stop deadline (a transfer's worker threads) must not hold the process past the
    grace period: the interpreter would join non-daemon threads at exit, however long they take."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
