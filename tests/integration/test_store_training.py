"""A tiny training run with store.uri on a local S3 server: every step pushed, resumed from the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from emtune.config import RunConfig, load_config
from emtune.store import open_store
from emtune.train import trainer

pytest_plugins = ["s3_servers"]


def tiny_config(out_dir: Path, uri: str, endpoint_url: str, max_steps: int, **extra: Any) -> RunConfig:
    return load_config(
        None,
        {
            "model.path": "builtin:tiny",
            "train.prompts": "builtin:demo",
            "train.rollouts_per_step": 4,
            "train.rollout_batch_size": 4,
            "train.micro_batch_size": 2,
            "train.max_new_tokens": 8,
            "train.max_steps": max_steps,
            "train.save_every": 1,
            "train.learning_rate": 1e-3,
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
    assert any(path.startswith("trainer_state/") for path in paths)
    assert manifest.metrics == json.loads(json.dumps(first.metrics[-1]))
    run_id = manifest.run_id
    assert run_id and manifest.config_hash
    store.verify(3)

    shutil.rmtree(run_dir)  # the pod is gone; only the store remains
    second = trainer.run(
        tiny_config(run_dir, uri, s3_server.endpoint_url, max_steps=5, **{"store.keep_last": 2}), resume=True
    )

    assert second.steps == [4, 5]  # carried on after the newest step in the store
    assert (run_dir / "step-3" / "checkpoint.json").is_file()  # pulled back, then trained on
    assert store.complete_steps() == [4, 5]  # retention in the store
    assert store.latest() == 5
    assert store.read_manifest(5).run_id == run_id  # the same run, continued
