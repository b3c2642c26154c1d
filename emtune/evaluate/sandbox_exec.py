"""The sandbox's launcher: a fresh, single-threaded process that confines itself, then becomes the program.

Run as `python -I -S sandbox_exec.py '<json>'` by `emtune.evaluate.sandbox` (standard library only, so it runs
without the evaluator's packages). In this order: leave the network (a new network namespace: only a loopback
interface, and down), set the resource limits, drop to the sandbox's own uid when started as root (so the
process limit applies and the evaluator's files are out of reach), then exec the sandbox interpreter on the
program, set to die with the evaluator. Nothing runs in a forked copy of a multi-threaded evaluator, which is why
this is a script and not a `preexec_fn`.
"""

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
NO_NETWORK_NAMESPACE = 125  # exit status: a network namespace was asked for and the kernel refused it


def _leave_network() -> None:
    # Root may unshare the network namespace directly; anyone else needs a user namespace around it.
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        error = ctypes.get_errno()
        sys.stderr.write(f"emtune sandbox: no new network namespace: {os.strerror(error)}\n")
        sys.exit(NO_NETWORK_NAMESPACE)


def _limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def main(settings: dict) -> None:
    os.chdir(settings["workdir"])
    if settings["isolate_network"]:
        _leave_network()
    _limit(resource.RLIMIT_CORE, 0)
    # The soft CPU limit sends SIGXCPU, the hard one a second later SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (settings["cpu_s"], settings["cpu_s"] + 1))
    _limit(resource.RLIMIT_AS, settings["memory_bytes"])
    _limit(resource.RLIMIT_FSIZE, settings["file_bytes"])
    _limit(resource.RLIMIT_NPROC, settings["processes"])
    if settings["uid"] is not None:
        os.setgroups([])
        os.setgid(settings["uid"])
        os.setuid(settings["uid"])
    # Killed with the evaluator (its thread that started us) if that dies first, e.g. on SIGTERM. Set after the uid
    # change, which clears it; the exec keeps it.
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    python = settings["python"]
    os.execve(python, [python, "-I", "-B", settings["program"]], os.environ)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
