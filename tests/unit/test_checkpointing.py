"""The checkpoint manager: which local steps reconcile pushes, which carry state, what --resume compares."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from emtune.config import load_config
from emtune.config.store import StoreConfig
from emtune.errors import TrainingError
from emtune.store import open_store
from emtune.train import checkpoint
from emtune.train.checkpointing import RESUME_MAY_CHANGE, Checkpointer, hyperparameters, pushes_state

RANK_0 = SimpleNamespace(is_main_process=True, is_local_main_process=True)  # what the manager asks an accelerator


def sealed_step(run_dir: Path, step: int) -> Path:
    folder = checkpoint.step_dir(run_dir, step)
    (folder / checkpoint.STATE_DIR).mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes([step]) * 100)
    (folder / checkpoint.STATE_DIR / "optimizer.bin").write_bytes(b"adam" * 100)
    (folder / checkpoint.STATE_DIR / checkpoint.STATE_FILE).write_text(json.dumps({"step": step}))
    (folder / checkpoint.MARKER).write_text(json.dumps({"step": step, "metrics": {"loss": 1.0}, "run_id": "r1"}))
    return folder


def manager(tmp_path: Path, **overrides: object) -> Checkpointer:
    store = (tmp_path / "store").as_uri()
    cfg = load_config(None, {"run.out_dir": str(tmp_path / "run"), "store.uri": store, "train.max_steps": 3,
                             **overrides})  # fmt: skip
    return Checkpointer(cfg, RANK_0, resume=True, hyperparameters={})


def test_start_pushes_the_local_steps_the_store_lacks_with_state_for_the_final_step_only(tmp_path):
    for step in (1, 2, 3):
        sealed_step(tmp_path / "run", step)
    store = open_store((tmp_path / "store").as_uri(), StoreConfig())
    store.push(checkpoint.step_dir(tmp_path / "run", 1), 1, run_id="r1", config_hash="h", metrics={})

    checkpoints = manager(tmp_path)
    checkpoints.start()
    checkpoints.finish([])

    assert store.complete_steps() == [1, 2, 3]
    assert store.state_steps() == [3]
    assert store.read_manifest(2).run_id == "r1" and store.read_manifest(2).metrics == {"loss": 1.0}


def test_start_does_not_push_again_what_store_retention_would_remove_at_once(tmp_path):
    for step in (1, 2, 3):
        sealed_step(tmp_path / "run", step)
    checkpoints = manager(tmp_path, **{"store.keep_last": 1, "store.state_every": 2})
    checkpoints.start()
    checkpoints.finish([])
    store = open_store((tmp_path / "store").as_uri(), StoreConfig())
    assert store.complete_steps() == [3]
    assert {entry.step for entry in store.listing()} == {3}  # steps 1 and 2 were never sent


def test_a_stale_partial_folder_is_removed_and_an_empty_store_is_fine(tmp_path):
    (tmp_path / "run" / ".step-9.partial").mkdir(parents=True)
    checkpoints = manager(tmp_path)
    checkpoints.start()
    checkpoints.finish([])
    assert not (tmp_path / "run" / ".step-9.partial").exists()
    assert (tmp_path / "store").is_dir()  # the probe created the store and left nothing in it
    assert not list((tmp_path / "store").iterdir())


def test_state_goes_with_the_final_step_and_every_state_every_th():
    assert [pushes_state(step, 6, 0) for step in range(1, 7)] == [False] * 5 + [True]
    assert [pushes_state(step, 6, 4) for step in range(1, 7)] == [False, False, False, True, False, True]


def test_resume_compares_hyperparameters_but_not_the_keys_that_may_change():
    base = load_config(None, {})
    prompts = [[1, 2, 3]]
    same = hyperparameters(load_config(None, {"train.max_steps": 99, "train.micro_batch_size": 8}), prompts)
    assert same == hyperparameters(base, prompts)
    assert not RESUME_MAY_CHANGE & set(same)
    changed = hyperparameters(load_config(None, {"train.learning_rate": 1e-4, "train.lora.r": 4}), prompts)
    assert {key for key in changed if changed[key] != same[key]} == {"train.learning_rate", "train.lora.r"}
    other_prompts = hyperparameters(base, [[1, 2, 4]])
    assert [key for key in same if same[key] != other_prompts[key]] == ["prompts (sha256 of the encoded prompts)"]


def test_seal_never_replaces_a_folder_it_did_not_write(tmp_path: Path) -> None:
    partial, final = checkpoint.partial_dir(tmp_path, 3), checkpoint.step_dir(tmp_path, 3)
    (partial / checkpoint.STATE_DIR).mkdir(parents=True)
    final.mkdir()
    (final / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="step-3' exists and is not a complete step"):
        checkpoint.seal(partial, final, {"step": 3}, {"step": 3})
    assert (final / "notes.txt").read_text() == "mine" and not (final / checkpoint.MARKER).exists()
