"""SIGTERM (what the kubelet sends on pre-emption, before its grace period runs out) handled like SIGINT.

A long command installs `handle_stop_signals` once; either signal then raises `Stopped` in the main thread,
except inside a `shielded()` block (a rename, a retention pass, a metrics line), which finishes first: so a
stop always lands between two states that are each complete on disk. `deadline(grace_s)` is when the work
still in flight (a push) must be finished or abandoned.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so `except Exception` never swallows it;
    not a KeyboardInterrupt, so click does not turn it into a bare "Aborted!"."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.signal_name}")


class _State:
    forwards: list[Callable[[], None]] = []  # run on a stop signal, before it is raised  # noqa: RUF012
    shield_depth = 0
    deferred: int | None = None  # a signal that arrived inside a shielded block
    received_at: float | None = None  # time.monotonic() of the first stop signal


_state = _State()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _state.received_at is None:
        _state.received_at = time.monotonic()
    for forward in list(_state.forwards):
        with contextlib.suppress(Exception):  # a failing forward must not hide the stop
            forward()
    if _state.shield_depth > 0:
        _state.deferred = signum
        return
    raise Stopped(signum)


@contextlib.contextmanager
def handle_stop_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise `Stopped` while the block runs (main thread only); previous handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {signum: signal.signal(signum, _on_signal) for signum in STOP_SIGNALS}
    _state.received_at, _state.deferred, _state.shield_depth = None, None, 0
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def forwarding(forward: Callable[[], None]) -> Iterator[None]:
    """Call `forward()` (quick, no waiting) the moment a stop signal arrives, while the block runs: to pass the
    stop on to child processes before a library's own wait for them (kfp.local's) blocks the stop."""
    _state.forwards.append(forward)
    try:
        yield
    finally:
        _state.forwards.remove(forward)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """A stop signal arriving inside the block is raised when the block ends, not in the middle of it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.shield_depth += 1
    try:
        yield
    finally:
        _state.shield_depth -= 1
        if _state.shield_depth == 0 and _state.deferred is not None:
            signum, _state.deferred = _state.deferred, None
            raise Stopped(signum)


def stop_requested() -> bool:
    return _state.received_at is not None


def deadline(grace_s: float) -> float:
    """The time.monotonic() by which in-flight work must end: `grace_s` after the stop signal (or from now)."""
    start = _state.received_at if _state.received_at is not None else time.monotonic()
    return start + grace_s
