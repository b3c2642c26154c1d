"""The `emtune` command: one sub-command per pipeline step, each a thin call into the library."""

from __future__ import annotations

import logging
import os
import sys

from rich.console import Console
from rich.logging import RichHandler

from emtune.cli.app import app
from emtune.errors import EmtuneError

# Each module registers its commands on `app` when imported.
from emtune.cli import bench, benchmarks, ckpt, config, eval, model, pipeline, prep, report, train  # noqa: F401  isort: skip

_stderr = Console(stderr=True)


def _log_to_stderr() -> logging.Handler:
    """Library logs go to whatever sys.stderr is at the time of writing (rich resolves it per write)."""
    handler = RichHandler(console=_stderr, show_time=False, show_path=False, markup=False)
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
    try:
        app()  # usage errors: typer prints them and exits 2
    except EmtuneError as err:
        _stderr.print(f"[red]error:[/red] {err}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
    finally:
        # Leave no global logging state behind for in-process callers (tests, notebooks).
        logging.getLogger().removeHandler(handler)
