"""Total deadlines for calls into clients whose own timeouts are per socket read (botocore, the KFP client):
a server that trickles one byte a second never trips those, so the call runs in a daemon thread and the caller
stops waiting at the deadline, with an error that names it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from emtune.errors import EmtuneError

T = TypeVar("T")


def call_with_deadline(fn: Callable[[], T], seconds: float, on_timeout: Callable[[], EmtuneError]) -> T:
    """`fn()`, or `on_timeout()` raised once `seconds` have passed. The abandoned call ends on its own (its
    thread is a daemon: it never holds the process at exit); a stop signal interrupts the wait as usual."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="emtune-bounded-call", daemon=True).start()
    if not done.wait(seconds):
        raise on_timeout()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Bounded:
    """A client whose every method call has the same total deadline (`call_with_deadline`)."""

    def __init__(self, client: Any, seconds: float, on_timeout: Callable[[str], EmtuneError]) -> None:
        self._client, self._seconds, self._on_timeout = client, seconds, on_timeout

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def bounded(*args: Any, **kwargs: Any) -> Any:
            return call_with_deadline(lambda: attribute(*args, **kwargs), self._seconds, lambda: self._on_timeout(name))

        return bounded
