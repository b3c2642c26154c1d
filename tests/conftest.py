"""Session-wide test set-up: an isolated model cache, so `builtin:tiny` is written once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
# Test modules import helpers from these plugins too; rewrite their asserts either way.
pytest.register_assert_rewrite("dashboard_support")


@pytest.fixture(scope="session", autouse=True)
def emtune_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point EMTUNE_CACHE at a per-session folder (subprocesses inherit it)."""
    cache = tmp_path_factory.mktemp("emtune-cache")
    previous = os.environ.get("EMTUNE_CACHE")
    os.environ["EMTUNE_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("EMTUNE_CACHE", None)
    else:
        os.environ["EMTUNE_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_model_dir(emtune_cache: Path) -> Path:
    from emtune.model.loading import resolve_model

    return Path(resolve_model("builtin:tiny"))
