"""Leftovers of killed commands: temporary siblings of an output are removed by the next command that writes it
(a live writer's are kept); an interrupted eval resumes from its completed pairs."""

from __future__ import annotations

import os
import signal

from fault_support import start, wait_for

from emtune.fsutil import atomic_dir, remove_stale_siblings


def test_a_dead_writers_siblings_are_removed_and_a_live_ones_kept(tmp_path):
    host = os.uname().nodename
    dead = tmp_path / f".out.partial-{host}-999999-abcd1234"
    live = tmp_path / f".out.partial-{host}-{os.getpid()}-abcd1234"
    other = tmp_path / f".other.partial-{host}-999999-abcd1234"
    for folder in (dead, live, other):
        folder.mkdir()

    assert remove_stale_siblings(tmp_path / "out") == [dead]
    assert live.is_dir() and other.is_dir()


def test_a_killed_ckpt_pull_leaves_a_sibling_the_next_pull_removes(tmp_path, make_step_dir_local):
    store = tmp_path / "store"
    pushed = start(["ckpt", "push", str(make_step_dir_local), store.as_uri()])
    assert pushed.wait(timeout=120) == 0
    beacon = tmp_path / "beacon"
    target = tmp_path / "pulled"
    killed = start(["ckpt", "pull", f"{store.as_uri()}/step-1", str(target)], pause="output-written", beacon=beacon)
    wait_for(beacon, killed)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pulled.partial-")]

    rerun = start(["ckpt", "pull", f"{store.as_uri()}/step-1", str(target)])
    assert rerun.wait(timeout=120) == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".pulled.")]
    assert (target / "model.safetensors").is_file()


def test_atomic_dir_writes_under_a_sibling_named_by_its_writer(tmp_path):
    with atomic_dir(tmp_path / "out", "test") as tmp:
        assert tmp.name.startswith(f".out.partial-{os.uname().nodename}-{os.getpid()}-")
