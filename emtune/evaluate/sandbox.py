"""Running model-written programs: never in the evaluator's process, each in a confined worker subprocess.

Each program gets a fresh temporary working folder (removed after), an environment built from an allow-list
(so no `AWS_*`, `WANDB_*`, `HF_TOKEN` or any other credential of the evaluator reaches it), limits on CPU
seconds, address space, file size and processes, a new network namespace where the kernel allows one, and a
wall-clock deadline after which its whole process group is killed. Started as root, it runs as a uid of its
own per concurrency slot: the process limit then counts only its processes, the evaluator's files are out of
its reach, and every process left under that uid (one that left the process group, say) is killed after it.
`sandbox_exec.py` applies the limits in the child; this module starts it, waits, and cleans up.

What it does not protect against: a kernel exploit; reads of world-readable files; writes to world-writable
folders (/tmp, /dev/shm) up to the file-size limit; when not started as root, writes to the evaluator's own
files and processes that leave the process group (they live until their CPU limit).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from emtune.config.evaluate import SandboxConfig
from emtune.errors import ConfigError
from emtune.evaluate import sandbox_exec

log = logging.getLogger(__name__)

_LAUNCHER = Path(sandbox_exec.__file__)
_PROGRAM = "program.py"
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_OUTPUT_TAIL = 2000  # characters of a program's output kept for its sample record
_KILL_ROUNDS = 50  # sweeps of a uid's processes; a fork bomb may still be forking while it is being killed


@dataclass(frozen=True)
class RunResult:
    passed: bool  # exited 0 within its limits
    returncode: int | None  # negative: killed by that signal; None: killed at the wall-clock deadline
    timed_out: bool
    output: str  # the tail of its stdout and stderr


def _resolve_python(name: str) -> str:
    found = shutil.which(name, path=_SAFE_PATH) if os.sep not in name else name
    if not found or not os.access(found, os.X_OK):
        raise ConfigError(
            f"eval.sandbox.python {name!r} is not an executable (looked in {_SAFE_PATH}); give a Python interpreter"
        )
    return found


def _processes_of(uid: int) -> list[int]:
    """Live processes of `uid` (zombies are already dead: their parent or init reaps them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            if entry.stat().st_uid == uid and state != "Z":
                pids.append(int(entry.name))
    return pids


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` until none is left (or the rounds run out, which is logged)."""
    for _ in range(_KILL_ROUNDS):
        pids = _processes_of(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    log.warning("sandbox uid %d still has processes after %d kill rounds", uid, _KILL_ROUNDS)


class Sandbox:
    """Runs programs with the limits of `cfg`, at most `cfg.concurrency` at a time (thread-safe)."""

    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self.python = _resolve_python(cfg.python)
        self.as_root = os.geteuid() == 0
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(cfg.concurrency):
            self._slots.put(slot)
        self.network_isolated = self._probe_network()

    def _probe_network(self) -> bool:
        """Whether this kernel gives the sandbox a network namespace; without one, say so (or refuse)."""
        probe = self._run("pass\n", slot=0, isolate_network=True)
        if probe.returncode != sandbox_exec.NO_NETWORK_NAMESPACE:
            return True
        reason = probe.output.strip().splitlines()[-1] if probe.output.strip() else "refused"
        if self.cfg.require_network_isolation:
            raise ConfigError(
                f"eval.sandbox.require_network_isolation is set but this kernel gives no network namespace ({reason});"
                " allow user namespaces (sysctl user.max_user_namespaces) or unset it"
            )
        log.warning("sandboxed programs are NOT cut off from the network here (%s)", reason)
        return False

    def run(self, source: str) -> RunResult:
        slot = self._slots.get()
        try:
            return self._run(source, slot, self.network_isolated)
        finally:
            self._slots.put(slot)

    def run_all(self, sources: Sequence[str]) -> list[RunResult]:
        """Results in order; at most `concurrency` programs run at once."""
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="sandbox") as pool:
            return list(pool.map(self.run, sources))

    def _uid(self, slot: int) -> int | None:
        return self.cfg.uid_base + slot if self.as_root else None

    @contextlib.contextmanager
    def _workdir(self, uid: int | None) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="emtune-sandbox-"))
        try:
            if uid is not None:
                os.chown(folder, uid, uid)
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # never follows a link the program left

    def _env(self, workdir: Path) -> dict[str, str]:
        # An allow-list, not a deny-list: whatever secret the evaluator holds, under whatever name, stays here.
        return {"PATH": _SAFE_PATH, "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8"}

    def _run(self, source: str, slot: int, isolate_network: bool) -> RunResult:
        cfg, uid = self.cfg, self._uid(slot)
        with self._workdir(uid) as workdir, tempfile.TemporaryFile() as output:
            program = workdir / _PROGRAM
            program.write_text(source, encoding="utf-8")
            settings = {
                "workdir": str(workdir),
                "program": str(program),
                "python": self.python,
                "uid": uid,
                "isolate_network": isolate_network,
                "cpu_s": cfg.cpu_s,
                "memory_bytes": cfg.memory_mb << 20,
                "file_bytes": cfg.file_size_mb << 20,
                "processes": cfg.max_processes,
            }
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(settings)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=self._env(workdir),
                start_new_session=True,
                close_fds=True,
            )
            timed_out = False
            try:
                returncode: int | None = process.wait(timeout=cfg.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out, returncode = True, None
            finally:
                self._kill_all(process, uid)
            output.seek(0)
            text = output.read().decode("utf-8", "replace")[-_OUTPUT_TAIL:]
        return RunResult(passed=returncode == 0, returncode=returncode, timed_out=timed_out, output=text)

    def _kill_all(self, process: subprocess.Popen[bytes], uid: int | None) -> None:
        """Kill the program's process group, then (as root) everything its uid still runs; reap the launcher."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if uid is not None:
            _kill_uid(uid)
