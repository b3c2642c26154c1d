"""A test-only hook that parks a command at a named point, so a fault suite can stop it exactly there.

`EMTUNE_FAULT_PAUSE=<point>[@<n>]:<beacon file>` makes the n-th arrival (default: the first) at `pause_point
(<point>)` write the beacon file and then wait, until a signal ends the wait (main thread) or forever (a worker
thread, such as the store pusher). Unset, a pause point costs one environment lookup.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

ENV = "EMTUNE_FAULT_PAUSE"
_arrivals: dict[str, int] = {}
_lock = threading.Lock()


def pause_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, beacon = spec.partition(":")
    point, _, nth = point.partition("@")
    if point != name or not beacon:
        return
    with _lock:
        _arrivals[name] = _arrivals.get(name, 0) + 1
        arrival = _arrivals[name]
    if arrival != int(nth or 1):
        return
    Path(beacon).write_text(f"{name} {os.getpid()}\n", encoding="utf-8")
    while True:  # a stop signal raises out of the sleep in the main thread
        time.sleep(0.05)
