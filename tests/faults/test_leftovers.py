"""Leftovers of killed commands: temporary siblings of an output are removed by the next command that writes it
(a live writer's are kept); an interrupted eval resumes from its completed pairs."""

from __future__ import annotations

import logging
import os
import signal

from fault_support import SIGTERM_EXIT, finish, start, stop, wait_for

from emtune.config import load_config
from emtune.evaluate import runner
from emtune.fsutil import atomic_dir, remove_stale_siblings
from emtune.report.collect import collect_eval


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
    assert finish(pushed, timeout=120) is not None and pushed.returncode == 0
    beacon = tmp_path / "beacon"
    target = tmp_path / "pulled"
    killed = start(["ckpt", "pull", f"{store.as_uri()}/step-1", str(target)], pause="output-written", beacon=beacon)
    wait_for(beacon, killed)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pulled.partial-")]

    rerun = start(["ckpt", "pull", f"{store.as_uri()}/step-1", str(target)])
    finish(rerun, timeout=120)
    assert rerun.returncode == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".pulled.")]
    assert (target / "model.safetensors").is_file()


def test_atomic_dir_writes_under_a_sibling_named_by_its_writer(tmp_path):
    with atomic_dir(tmp_path / "out", "test") as tmp:
        assert tmp.name.startswith(f".out.partial-{os.uname().nodename}-{os.getpid()}-")


def test_an_interrupted_eval_resumes_from_its_completed_pairs_and_report_names_the_missing(
    tmp_path, tiny_model_dir, caplog
):
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--benchmarks",
        "demo-arith,demo-algebra",
        "--out",
        str(out),
        "--set",
        "eval.backend=hf",
        "--set",
        "eval.limit=1",
        "--set",
        "eval.n=1",
        "--max-new-tokens",
        "4",
    ]
    beacon = tmp_path / "beacon"
    first = start(argv, pause="output-written@2", beacon=beacon)  # the second pair written, not renamed
    wait_for(beacon, first)
    stop(first, timeout=60)
    assert first.returncode == SIGTERM_EXIT
    label = tiny_model_dir.name
    kept = out / label / "demo-arith" / "samples.jsonl"
    assert kept.is_file() and not (out / label / "demo-algebra").exists()
    with caplog.at_level(logging.WARNING):
        collect_eval([out])
    assert f"missing 1 planned pair(s), left out by an interrupted eval: {label} on demo-algebra" in caplog.text
    before = kept.stat().st_mtime_ns

    cfg = load_config(None, {"eval.backend": "hf", "eval.limit": 1, "eval.n": 1, "eval.max_new_tokens": 4})
    runner.run(cfg, [str(tiny_model_dir)], ["demo-arith", "demo-algebra"], out, resume=True)

    assert kept.stat().st_mtime_ns == before  # the completed pair was kept, not redone
    assert (out / label / "demo-algebra" / "metrics.json").is_file()
    assert not [p for p in (out / label).iterdir() if p.name.startswith(".")]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert len(collect_eval([out])) == 2
    assert "missing" not in caplog.text
