"""The sandbox for model-written code: each escape attempt is a failed sample, and the evaluator is unharmed.

Every hostile program below exits 0 only if it got what it tried for, so a sandbox without the matching
protection scores it as passed and the test fails (checked by removing each protection in turn).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from emtune.config.evaluate import SandboxConfig
from emtune.evaluate.grading import Grader
from emtune.evaluate.sandbox import Sandbox, _processes_of

LIMITS = SandboxConfig(timeout_s=3, cpu_s=3, memory_mb=512, file_size_mb=8, max_processes=16, concurrency=2)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="own uid per slot needs root (documented limitation)")


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS)


def run(sandbox: Sandbox, source: str) -> tuple[bool, float]:
    started = time.monotonic()
    result = sandbox.run(textwrap.dedent(source))
    return result.passed, time.monotonic() - started


def test_a_good_program_passes_and_a_failing_one_fails(sandbox: Sandbox) -> None:
    assert sandbox.run("assert 1 + 1 == 2\n").passed
    failed = sandbox.run("assert 1 + 1 == 3, 'arithmetic'\n")
    assert not failed.passed and failed.returncode == 1 and "AssertionError: arithmetic" in failed.output


def test_an_infinite_loop_is_killed_at_the_deadline(sandbox: Sandbox) -> None:
    passed, took = run(sandbox, "while True:\n    pass\n")
    assert not passed and took < LIMITS.timeout_s + 3


def test_a_sleeping_program_is_killed_at_the_wall_clock_deadline(sandbox: Sandbox) -> None:
    result = sandbox.run("import time\ntime.sleep(60)\n")
    assert not result.passed and result.timed_out


@as_root
def test_a_fork_bomb_is_contained_and_leaves_no_process(sandbox: Sandbox) -> None:
    passed, took = run(
        sandbox,
        """
        import os
        children = 0
        for _ in range(200):
            if os.fork() == 0:
                os.setsid()  # leave the process group, so only the uid sweep finds it
                import time; time.sleep(60); os._exit(0)
            children += 1
        assert children == 200
    """,
    )
    assert not passed and took < LIMITS.timeout_s + 3
    assert not any(_processes_of(LIMITS.uid_base + slot) for slot in range(LIMITS.concurrency))


@as_root
def test_a_process_that_leaves_the_group_is_killed_after_the_program(sandbox: Sandbox) -> None:
    assert sandbox.run("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n").passed
    assert not any(_processes_of(LIMITS.uid_base + slot) for slot in range(LIMITS.concurrency))


def test_a_memory_hog_fails_without_touching_the_evaluator(sandbox: Sandbox) -> None:
    passed, _ = run(sandbox, "hog = bytearray(768 << 20)  # over the 512 MiB limit, and quick to fill without it\n")
    assert not passed


def test_a_10_gb_file_write_stops_at_the_file_size_limit(sandbox: Sandbox) -> None:
    # Sparse (a seek, then one byte), so a sandbox without the limit fails this test without filling the disk.
    result = sandbox.run(
        textwrap.dedent("""
        import os
        with open("big.bin", "wb") as f:
            f.write(b"0" * (1 << 20))
            f.seek((10 << 30) - 1)
            f.write(b"0")
        assert os.path.getsize("big.bin") == 10 << 30
    """)
    )
    assert not result.passed and "File too large" in result.output


@as_root
def test_a_write_outside_its_folder_fails(sandbox: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "evaluator-output.txt"
    target.write_text("mine\n")
    passed, _ = run(sandbox, f"open({str(target)!r}, 'w').write('overwritten')\n")
    assert not passed and target.read_text() == "mine\n"


def test_its_folder_is_fresh_and_removed_afterwards(sandbox: Sandbox) -> None:
    result = sandbox.run(
        "import os\nassert os.listdir('.') == ['program.py']\nopen('left', 'w').write('x')\nprint(os.getcwd())\n"
    )
    assert result.passed
    assert not Path(result.output.strip()).exists()


def test_credentials_in_the_evaluators_environment_do_not_reach_it(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_SECRET_ACCESS_KEY", "WANDB_API_KEY", "HF_TOKEN", "GITHUB_TOKEN"):
        monkeypatch.setenv(name, "secret-value-1234")
    passed, _ = run(
        sandbox,
        """
        import os
        leaked = [k for k, v in os.environ.items() if "secret-value-1234" in v]
        assert leaked, "no credential visible"
    """,
    )
    assert not passed


def test_an_outbound_connection_fails(sandbox: Sandbox) -> None:
    if not sandbox.network_isolated:
        pytest.fail("this kernel gives no network namespace: the sandbox would warn and run without one")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []
    server.settimeout(5)

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    passed, _ = run(sandbox, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).send(b'x')\n")
    server.close()
    thread.join()
    assert not passed and not accepted


def test_the_connection_check_is_real_without_the_namespace(sandbox: Sandbox) -> None:
    """Control: the same connection succeeds when the program keeps the evaluator's network."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    result = sandbox._run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n", 0, False)
    server.close()
    assert result.passed, result.output


def test_hostile_programs_are_failed_samples_and_the_grader_still_grades(tmp_path: Path) -> None:
    tests = "def check(f):\n    assert f() == 1\n\ncheck(answer)\n"
    completions = [
        "```python\ndef answer():\n    return 1\n```",
        "```python\ndef answer():\n    while True:\n        pass\n```",
        "```python\nimport os\nwhile True:\n    os.fork()\n```",
        "```python\nx = bytearray(4 << 30)\ndef answer():\n    return 1\n```",
        "```python\ndef answer():\n    return 2\n```",
    ]
    with Grader(sandbox=LIMITS) as grader:
        grades = grader.grade([(completion, tests) for completion in completions], kind="code")
        again = grader.grade([(completions[0], tests)], kind="code")
    assert [grade.correct for grade in grades] == [True, False, False, False, False]
    assert grades[1].timed_out and again[0].correct
    assert grades[0].extracted == "def answer():\n    return 1"


def test_a_program_dies_with_an_evaluator_killed_by_sigterm() -> None:
    evaluator = textwrap.dedent("""
        from emtune.config.evaluate import SandboxConfig
        from emtune.evaluate.sandbox import Sandbox
        Sandbox(SandboxConfig(timeout_s=120, cpu_s=120)).run("import time\\ntime.sleep(120)\\n")
    """)
    process = subprocess.Popen([sys.executable, "-c", evaluator])
    deadline = time.monotonic() + 60
    while not (programs := _programs_of(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert programs, "the program never started"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in programs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in programs)


def _programs_of(parent: int) -> list[int]:
    """The sandboxed programs `parent` started (the launcher execs into the program, so it is a direct child)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int(entry.joinpath("stat").read_text().rpartition(")")[2].split()[1])
            cmdline = entry.joinpath("cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if ppid == parent and cmdline.endswith(b"program.py\0") and b"-I\0-B" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"
