"""What `--model` names, expanded to the checkpoints to evaluate, each labelled by its training step.

Accepted: a local model folder, a hub id, `builtin:tiny`, a store step URI (`s3://b/run/step-3`,
`file:///x/run/step-3`), a store prefix or a local run folder (every complete step in it). A plain model is
step 0; a checkpoint's step comes from its `step-N` folder name.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from emtune.config.store import StoreConfig
from emtune.errors import ModelError
from emtune.model.loading import resolve_model
from emtune.store import open_store, split_step_uri
from emtune.store.integrity import check_tokenizer_files, check_weight_files, verify_sealed
from emtune.store.layout import parse_step_name, step_name
from emtune.train.checkpoint import complete_steps, step_dir

_STORE_URI = re.compile(r"^(s3|file)://", re.IGNORECASE)


@dataclass(frozen=True)
class ModelRef:
    spec: str  # a loadable spec (folder, hub id, builtin:...) or a store step URI
    step: int
    label: str  # folder name of its results: step-N for checkpoints, the model's name otherwise


def _safe_label(name: str) -> str:
    """A folder-name-safe label: hub ids keep their org as `org--name`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "--")).strip("-") or "model"


def _expand_one(spec: str, store_cfg: StoreConfig) -> list[ModelRef]:
    if _STORE_URI.match(spec):
        _, step = split_step_uri(spec)
        if step is not None:
            return [ModelRef(spec.rstrip("/"), step, step_name(step))]
        steps = open_store(spec, store_cfg).complete_steps()
        if not steps:
            raise ModelError(f"store prefix {spec!r} holds no complete step (step-N/ with a manifest)")
        return [ModelRef(f"{spec.rstrip('/')}/{step_name(s)}", s, step_name(s)) for s in steps]
    local = Path(spec).expanduser()
    if local.is_dir() and not (local / "config.json").is_file():
        steps = complete_steps(local)
        if steps:
            return [ModelRef(str(step_dir(local, s)), s, step_name(s)) for s in steps]
    resolve_model(spec)  # fail now, naming the spec, rather than after other models were evaluated
    step = parse_step_name(local.name) if local.is_dir() else None
    if step is not None:
        return [ModelRef(str(local), step, local.name)]
    return [ModelRef(spec, 0, _safe_label(local.name if local.exists() else spec))]


def _run_name(ref: ModelRef) -> str:
    """The folder a step checkpoint sits in (its run), or the model's own name for a plain model."""
    path = PurePosixPath(ref.spec.rstrip("/"))
    return _safe_label(path.parent.name if parse_step_name(path.name) is not None else ref.spec)


def expand_models(specs: list[str], store_cfg: StoreConfig) -> list[ModelRef]:
    """Every checkpoint `specs` name, in order; labels that would collide get their run's name in front."""
    if not specs:
        raise ModelError("no model given; pass --model (a folder, hub id, builtin:tiny, or a store URI)")
    refs = [ref for spec in specs for ref in _expand_one(spec, store_cfg)]
    counts = Counter(ref.label for ref in refs)
    refs = [replace(ref, label=f"{_run_name(ref)}-{ref.label}") if counts[ref.label] > 1 else ref for ref in refs]
    duplicates = [label for label, count in Counter(ref.label for ref in refs).items() if count > 1]
    if duplicates:
        raise ModelError(f"models {duplicates} are given more than once; pass each checkpoint once")
    return refs


def local_paths(refs: list[ModelRef]) -> list[Path]:
    """The local folders among `refs` (not hub ids or store URIs): inputs an output must keep away from."""
    return [Path(ref.spec) for ref in refs if not _STORE_URI.match(ref.spec) and Path(ref.spec).exists()]


@contextlib.contextmanager
def local_model(ref: ModelRef, store_cfg: StoreConfig, pull_into: Path | None = None) -> Iterator[str]:
    """A path or hub id transformers and vLLM can load; a store checkpoint is pulled to a temporary folder
    (under `pull_into`, which the caller cleans if a kill leaves one behind; else the system's)."""
    if not _STORE_URI.match(ref.spec):
        path = resolve_model(ref.spec)
        check_tokenizer_files(Path(path))
        verify_sealed(Path(path), with_state=False)  # a step folder changed since its seal is not evaluated
        check_weight_files(Path(path))
        yield path
        return
    prefix, step = split_step_uri(ref.spec)
    assert step is not None
    if pull_into is not None:
        Path(pull_into).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emtune-eval-model-", dir=pull_into) as tmp:
        yield str(open_store(prefix, store_cfg).pull(step, Path(tmp) / step_name(step)))
