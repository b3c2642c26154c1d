"""One writer per output: a run folder, an eval folder, a local pipeline run; a second one is refused in one
line naming the holder, and the first's output is untouched."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from fault_support import error_lines, finish, start, tiny_config, wait_for, write_config

from emtune.config import load_config
from emtune.errors import ConfigError, OutputError, PipelineError
from emtune.evaluate import runner
from emtune.fsutil import exclusive_lock, is_locked
from emtune.runs.local import RECORD_FILE, load_record, run_local, settled
from emtune.train import checkpoint, trainer


def test_a_second_holder_of_a_folder_is_refused_naming_the_first(tmp_path):
    with exclusive_lock(tmp_path / "out", "run folder"):
        assert is_locked(tmp_path / "out")
        refused = pytest.raises(OutputError, match=r"run folder .*out' is in use by pid \d+ on .* since")
        with refused, exclusive_lock(tmp_path / "out", "run folder"):
            pass
    assert not is_locked(tmp_path / "out")
    with exclusive_lock(tmp_path / "out", "run folder"):  # released: free again
        pass


def test_an_eval_into_a_folder_another_eval_writes_is_refused(tmp_path, tiny_model_dir):
    cfg = load_config(None, {"eval.backend": "hf", "eval.limit": 1, "eval.max_new_tokens": 4})
    with exclusive_lock(tmp_path / "eval", "eval output"), pytest.raises(OutputError, match=r"eval output .* in use"):
        runner.run(cfg, [str(tiny_model_dir)], ["demo-arith"], tmp_path / "eval", overwrite=True)
    assert not (tmp_path / "eval").exists()


def test_a_used_run_id_is_refused_and_its_record_kept(tmp_path):
    from tests.common import TINY_RUN

    cfg = load_config(None, TINY_RUN)
    run_dir = tmp_path / "runs" / "same"
    run_dir.mkdir(parents=True)
    record = {
        "run_id": "same",
        "run_dir": str(run_dir),
        "status": "succeeded",
        "config": "c",
        "config_hash": "h",
        "created_at": "2026-12-04T20:00:00+00:00",
    }
    (run_dir / RECORD_FILE).write_text(json.dumps(record))

    with pytest.raises(ConfigError, match=r"run id 'same' is already used .*\(its run is succeeded\)"):
        run_local(cfg, tmp_path / "runs", run_id="same")
    assert load_record(run_dir).status == "succeeded"


def test_a_running_record_whose_process_is_gone_reads_failed(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    record = {
        "run_id": "r1",
        "run_dir": str(run_dir),
        "status": "running",
        "config": "c",
        "config_hash": "h",
        "created_at": "2026-12-04T20:00:00+00:00",
        "pid": 999999,
    }
    (run_dir / RECORD_FILE).write_text(json.dumps(record))

    with exclusive_lock(run_dir, "pipeline run folder"):  # a live runner holds it
        assert settled(load_record(run_dir)).status == "running"
    gone = settled(load_record(run_dir))
    assert gone.status == "failed" and "gone" in (gone.error or "")
    assert load_record(run_dir).status == "failed"  # rewritten
    (run_dir / RECORD_FILE).write_text('{"run_id": "r1", "stat')  # torn
    with pytest.raises(PipelineError, match=r"is not a valid run\.json"):
        load_record(run_dir)


@pytest.mark.faults
def test_a_second_trainer_and_a_resume_beside_a_live_run_are_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg = tiny_config(run_dir, **{"train.max_steps": 3})
    beacon = tmp_path / "beacon"
    first = start(
        ["train", "--config", str(write_config(cfg, tmp_path / "run.yaml"))], pause="rollout@2", beacon=beacon
    )
    wait_for(beacon, first)  # step 1 is sealed, step 2 under way

    for resume in (False, True):
        with pytest.raises(OutputError, match=rf"run folder '{run_dir}' is in use by pid {first.pid} "):
            trainer.run(cfg, resume=resume)
    second = start(["train", "--config", str(tmp_path / "run.yaml"), "--resume"])
    err = finish(second, timeout=120)
    assert second.returncode == 2 and len(error_lines(err)) == 1 and f"pid {first.pid}" in err

    first.send_signal(signal.SIGTERM)  # the first one stops; now a resume is the one writer
    finish(first, timeout=60)
    resumed = trainer.run(cfg, resume=True)
    assert resumed.steps == [2, 3]
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # one writer: no interleaved or repeated lines
    assert checkpoint.complete_steps(Path(run_dir)) == [1, 2, 3]
