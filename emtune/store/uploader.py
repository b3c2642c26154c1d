"""Push step folders in the background while training goes on, with a bounded queue for back-pressure."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emtune.errors import EmtuneError, StoreError
from emtune.faults import pause_point
from emtune.store.base import CheckpointStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    local_step_dir: Path
    step: int
    run_id: str
    config_hash: str
    metrics: dict[str, Any] = field(default_factory=dict)
    with_state: bool = False


_STOP = None


class BackgroundPusher:
    """One worker thread pushes steps in order; retention (steps, resume states) runs after each successful push.

    `submit` blocks while `max_pending` steps are already waiting, so a slow store holds training back
    instead of letting step folders pile up on disk. After a failed push, `submit` and `close` raise and the
    steps still queued are not pushed: training should not go on (and prune local steps) while the store is not
    receiving them, and a later step must not be committed over a gap (another writer may own the prefix).
    """

    def __init__(
        self, store: CheckpointStore, max_pending: int, keep_last: int | None, keep_state: int | None = None
    ) -> None:
        if max_pending < 1:
            raise StoreError(f"max_pending must be at least 1, got {max_pending}")
        self.store = store
        self.keep_last = keep_last
        self.keep_state = keep_state
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._pending: list[int] = []  # submitted and not yet committed, in submission order
        self._failures: list[str] = []
        self._closed = False
        self._abandoned = False
        self._worker = threading.Thread(target=self._work, name="emtune-store-pusher", daemon=True)
        self._worker.start()

    def pending_steps(self) -> list[int]:
        """Steps submitted and not committed (queued, uploading or failed): local pruning must keep them."""
        with self._lock:
            return list(self._pending)

    def submit(
        self,
        local_step_dir: Path,
        step: int,
        *,
        run_id: str,
        config_hash: str,
        metrics: dict[str, Any],
        with_state: bool = False,
    ) -> None:
        if self._closed:
            raise StoreError("this BackgroundPusher is closed; open a new one to push more steps")
        self._raise_failures()
        with self._lock:
            self._pending.append(step)
        self._queue.put(_Job(Path(local_step_dir), step, run_id, config_hash, dict(metrics), with_state))

    def wait(self) -> None:
        """Block until every step submitted so far is pushed; raise StoreError if any push failed."""
        self._queue.join()
        self._raise_failures()

    def close(self) -> None:
        """Wait for every submitted push; raise StoreError if any failed."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
        pause_point("final-push")  # the last pushes may still be in flight
        self._worker.join()
        self._raise_failures()

    def abort(self, deadline: float) -> list[int]:
        """Stop taking steps and give the pushes already queued until `deadline` (time.monotonic()) to finish;
        returns the steps left unpushed. Works after an interrupted `close()` too. An abandoned push has no
        manifest: the store shows it as incomplete and the next push of that step replaces it."""
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)  # a full queue: the worker is stopped by the deadline instead
        self._worker.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._pending)
        if self._worker.is_alive():
            self._abandoned = True  # the worker drops what it has not started once the current push ends
            log.warning(
                "stop deadline reached: abandoned the push of step(s) %s to %s (incomplete there; the next push "
                "of a step replaces it)",
                left,
                self.store.root_uri,
            )
        return left

    def _raise_failures(self) -> None:
        with self._lock:
            failures = list(self._failures)
        if failures:
            raise StoreError(f"{len(failures)} push(es) to {self.store.root_uri} failed: " + "; ".join(failures))

    def _work(self) -> None:
        while (job := self._queue.get()) is not _STOP:
            try:
                if self._failures or self._abandoned:
                    log.info("not pushing step %d: an earlier push failed or the run stopped", job.step)
                    continue
                self._push(job)
            except Exception as exc:  # the trainer learns of it through submit/wait/close, with the reason
                reason = str(exc) if isinstance(exc, EmtuneError) else f"{type(exc).__name__}: {exc}"
                log.error("pushing step %d failed: %s", job.step, reason)
                with self._lock:  # the step stays pending: its local folder is not in the store
                    self._failures.append(f"step {job.step}: {reason}")
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _push(self, job: _Job) -> None:
        self.store.push(
            job.local_step_dir,
            job.step,
            run_id=job.run_id,
            config_hash=job.config_hash,
            metrics=job.metrics,
            with_state=job.with_state,
        )
        with self._lock:
            self._pending.remove(job.step)
            protect = set(self._pending)
        if self.keep_last is not None:
            removed = self.store.apply_retention(self.keep_last, protect=protect)
            if removed:
                log.info("store retention removed steps %s", removed)
        if self.keep_state is not None and job.with_state:
            dropped = self.store.apply_state_retention(self.keep_state, protect=protect)
            if dropped:
                log.info("store retention removed the resume state of steps %s", dropped)
