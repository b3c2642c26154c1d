"""A bit flipped in a sealed step, a deleted tokenizer, a damaged object in the store: caught before evaluation,
push and resume, in one line; the store's copy is repaired from an intact local step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fault_support import tiny_config

from emtune.config import load_config
from emtune.errors import ModelError, StoreError
from emtune.evaluate import runner
from emtune.store.integrity import FILES_KEY
from emtune.store.local import LocalStore
from emtune.store.ops import push_folder
from emtune.train import trainer


@pytest.fixture(scope="module")
def sealed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("sealed") / "run"
    trainer.run(tiny_config(run_dir, **{"train.max_steps": 2}))
    return run_dir


def flip_a_bit(path: Path, offset: int = -64) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40  # an exponent bit of some weight
    path.write_bytes(bytes(data))


@pytest.fixture
def step(sealed_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run" / "step-2"
    shutil.copytree(sealed_run / "step-2", copy)
    return copy


def test_the_seal_records_every_file(step):
    files = json.loads((step / "checkpoint.json").read_text())[FILES_KEY]
    assert {"model.safetensors", "config.json", "tokenizer.json", "trainer_state/state.json"} <= set(files)
    assert files["model.safetensors"]["size"] == (step / "model.safetensors").stat().st_size


def eval_cfg():
    return load_config(None, {"eval.backend": "hf", "eval.limit": 1, "eval.max_new_tokens": 4, "eval.n": 1})


def test_a_flipped_bit_is_caught_before_evaluation_and_before_push(step, tmp_path):
    flip_a_bit(step / "model.safetensors")

    with pytest.raises(StoreError, match=r"model\.safetensors' changed after the step was sealed"):
        runner.run(eval_cfg(), [str(step)], ["demo-arith"], tmp_path / "eval")
    assert not (tmp_path / "eval" / "results.json").exists()
    with pytest.raises(StoreError, match=r"model\.safetensors' changed after the step was sealed"):
        push_folder(step, (tmp_path / "store").as_uri(), eval_cfg().store)
    assert LocalStore(tmp_path / "store").listing() == []  # not a byte certified


def test_resume_refuses_a_step_changed_since_its_seal(step):
    flip_a_bit(step / "trainer_state" / "optimizer.bin", offset=-8)
    cfg = tiny_config(step.parent, **{"train.max_steps": 3})

    with pytest.raises(StoreError, match=r"optimizer\.bin' changed after the step was sealed"):
        trainer.run(cfg, resume=True)


def test_a_model_folder_without_its_tokenizer_is_refused(step, tmp_path):
    (step / "tokenizer.json").unlink()

    with pytest.raises(ModelError, match="has no tokenizer"):
        runner.run(eval_cfg(), [str(step)], ["demo-arith"], tmp_path / "eval")


def test_the_start_up_reconcile_repairs_a_damaged_object_in_the_store(step, tmp_path):
    store = LocalStore(tmp_path / "store")
    push_folder(step, store.root_uri, eval_cfg().store)
    manifest = store.read_manifest(2)
    key = f"step-2/{manifest.upload}/model.safetensors"
    flip_a_bit(store.root / key)  # rot in the store; the local step is intact
    with pytest.raises(StoreError, match="is corrupt"):
        store.verify(2)

    cfg = tiny_config(step.parent, **{"train.max_steps": 2, "store.uri": store.root_uri})
    trainer.run(cfg, resume=True)  # nothing left to train: the reconcile alone

    store.verify(2)


def test_a_truncated_weight_file_of_a_plain_model_folder_is_one_line(step, tmp_path):
    (step / "checkpoint.json").unlink()  # a plain model folder: no seal to compare with
    weights = step / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    with pytest.raises(ModelError, match=r"model\.safetensors' is truncated or damaged"):
        runner.run(eval_cfg(), [str(step)], ["demo-arith"], tmp_path / "eval")


def test_a_weight_file_with_nan_values_is_one_line(step, tmp_path):
    from safetensors.torch import load_file, save_file

    (step / "checkpoint.json").unlink()  # a plain model folder: its bytes are whole, its values are not
    weights = step / "model.safetensors"
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, weights, metadata={"format": "pt"})

    with pytest.raises(ModelError, match=rf"holds NaN or infinite values in '{name}'"):
        runner.run(eval_cfg(), [str(step)], ["demo-arith"], tmp_path / "eval")
