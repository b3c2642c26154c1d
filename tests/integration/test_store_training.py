"""A tiny training run with store.uri on a local S3 server: every step pushed, resumed from the store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from emtune.bench.ckpt_bytes import TINY_RUN
from emtune.config import RunConfig, load_config
from emtune.errors import StoreError
from emtune.store import open_store
from emtune.store.ops import push_folder
from emtune.train import checkpoint, trainer

pytest_plugins = ["s3_servers"]


def tiny_config(out_dir: Path, uri: str, endpoint_url: str, max_steps: int, **extra: Any) -> RunConfig:
    return load_config(
        None,
        {
            **TINY_RUN,
            "train.max_steps": max_steps,
            "run.out_dir": str(out_dir),
            "store.uri": uri,
            "store.endpoint_url": endpoint_url,
            "store.path_style": True,
            **extra,
        },
    )


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_training_pushes_every_step_and_resumes_from_the_store(
    s3_server, s3_store_config, s3_bucket, tmp_path, monkeypatch
):
    monkeypatch.setenv("EMTUNE_CACHE", str(tmp_path / "cache"))
    uri = f"s3://{s3_bucket}/runs/tiny"
    run_dir = tmp_path / "run"

    first = trainer.run(tiny_config(run_dir, uri, s3_server.endpoint_url, max_steps=3))

    store = open_store(uri, s3_store_config)
    assert first.store_uris == {step: f"{uri}/step-{step}" for step in (1, 2, 3)}
    assert store.complete_steps() == [1, 2, 3]
    assert store.latest() == 3
    manifest = store.read_manifest(3)
    paths = {entry.path for entry in manifest.files}
    assert {"config.json", "model.safetensors", "checkpoint.json"} <= paths
    assert not any(path.startswith("trainer_state/") for path in paths)  # a step is the model
    assert store.state_steps() == [3]  # resume state: the final step's only (store.state_every 0)
    assert manifest.metrics == json.loads(json.dumps(first.metrics[-1]))
    run_id = manifest.run_id
    assert run_id and manifest.config_hash
    store.verify(3)

    shutil.rmtree(run_dir)  # the pod is gone; only the store remains
    second = trainer.run(
        tiny_config(run_dir, uri, s3_server.endpoint_url, max_steps=5, **{"store.keep_last": 2}), resume=True
    )

    assert second.steps == [4, 5]  # carried on after the newest step in the store
    # Exactly: the same losses as a run that was never interrupted.
    reference = trainer.run(tiny_config(tmp_path / "reference", uri.replace("tiny", "reference"),
                                        s3_server.endpoint_url, max_steps=5))  # fmt: skip
    assert [m["loss"] for m in second.metrics] == pytest.approx([m["loss"] for m in reference.metrics[3:]], rel=1e-6)
    # step-3 was pulled back and trained on; with a store, the run folder keeps its newest 2 steps.
    assert checkpoint.complete_steps(run_dir) == [4, 5]
    assert [checkpoint.has_state(run_dir / f"step-{step}") for step in (4, 5)] == [False, True]  # keep_state 1
    assert store.complete_steps() == [4, 5]  # retention in the store
    assert store.state_steps() == [5]
    assert store.latest() == 5
    assert store.read_manifest(5).run_id == run_id  # the same run, continued


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_step_sealed_before_a_sigkill_reaches_the_store_on_resume(s3_server, s3_store_config, s3_bucket, tmp_path):
    uri = f"s3://{s3_bucket}/runs/killed"
    run_dir = tmp_path / "run"
    settings = tiny_config(run_dir, uri, s3_server.endpoint_url, max_steps=3).model_dump(mode="json")
    slow, fast = tmp_path / "slow.yaml", tmp_path / "fast.yaml"
    fast.write_text(yaml.safe_dump(settings))
    # ~7 s per pushed step: step-2 is sealed long before its upload could finish.
    settings["store"]["max_bandwidth_mbps"] = 0.2
    slow.write_text(yaml.safe_dump(settings))

    def train(config: Path, *extra: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "emtune", "train", "--config", str(config), *extra]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    killed = train(slow)
    deadline = time.monotonic() + 240
    while not (run_dir / "step-2" / "checkpoint.json").exists():
        assert killed.poll() is None, killed.stderr.read() if killed.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    store = open_store(uri, s3_store_config)
    assert 2 not in store.complete_steps(), "step 2 reached the store before the kill; nothing left to reconcile"

    resumed = train(fast, "--resume")
    _, stderr = resumed.communicate(timeout=240)

    assert resumed.returncode == 0, stderr
    assert store.complete_steps() == [1, 2, 3]
    assert "pushing steps" in stderr and "before training on" in stderr
    local = {path.relative_to(run_dir / "step-2").as_posix() for path in (run_dir / "step-2").rglob("*")}
    pushed = {entry.path for entry in store.read_manifest(2).files}
    assert pushed == {path for path in local if (run_dir / "step-2" / path).is_file() and "trainer_state" not in path}
    store.verify(2)
    assert store.state_steps() == [3]


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_resume_stops_when_the_newest_step_in_the_store_is_model_only(
    s3_server, s3_store_config, s3_bucket, tmp_path, tiny_model_dir
):
    uri = f"s3://{s3_bucket}/runs/plain"
    plain = tmp_path / "plain-model"
    shutil.copytree(tiny_model_dir, plain)  # a model folder, not a step the trainer sealed
    assert push_folder(plain, f"{uri}/step-4", s3_store_config).uri == f"{uri}/step-4"
    store = open_store(uri, s3_store_config)
    assert store.read_manifest(4).kind == "model" and not store.has_state(4)

    with pytest.raises(StoreError, match=r"newest step in .*, step 4, is model-only .* --model s3://.*/step-4"):
        trainer.Trainer(tiny_config(tmp_path / "run", uri, s3_server.endpoint_url, max_steps=5), resume=True)
    assert not checkpoint.complete_steps(tmp_path / "run")
