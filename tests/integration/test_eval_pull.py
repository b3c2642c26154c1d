"""The evaluator fetches a store checkpoint's model files only, never its resume state."""

from __future__ import annotations

from pathlib import Path

from emtune.config.store import StoreConfig
from emtune.evaluate.models import expand_models, local_model
from emtune.fsutil import OUTPUT_MARKER
from emtune.store import open_store

pytest_plugins = ["s3_servers"]


def test_evaluator_pulls_the_model_files_of_a_step_and_not_its_state(make_step_dir, tmp_path):
    folder = make_step_dir(3)
    store = open_store((tmp_path / "store").as_uri(), StoreConfig())
    store.push(folder, 3, run_id="r", config_hash="c", metrics={}, with_state=True)

    (ref,) = expand_models([store.root_uri], StoreConfig())
    with local_model(ref, StoreConfig()) as path:
        # Besides the model files, the folder carries emtune's output marker (who wrote it).
        pulled = sorted(p.relative_to(path).as_posix() for p in Path(path).rglob("*") if p.name != OUTPUT_MARKER)
    assert ref.label == "step-3"
    assert pulled == ["checkpoint.json", "config.json", "model.safetensors", "tokenizer.json"]
