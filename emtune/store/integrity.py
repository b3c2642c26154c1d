"""A sealed step's own record of its bytes: `checkpoint.json` lists each file's size and sha256, taken when the
step is sealed, so a bit flipped on disk afterwards is caught before the step is evaluated, resumed or pushed
(and before a store's manifest could certify the bad bytes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emtune.errors import ModelError, StoreError
from emtune.fsutil import OUTPUT_MARKER
from emtune.store.layout import MARKER, is_state_path
from emtune.store.manifest import sha256_files

FILES_KEY = "files"  # in checkpoint.json: {relative path: {"size": bytes, "sha256": hex}}
# A model folder is evaluable only with one of these (a fast tokenizer, or the slow one's vocabulary).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def record_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file of a step folder but its marker and emtune's output stamp."""
    folder = Path(folder)
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (MARKER, OUTPUT_MARKER))
    return {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": digest}
        for path, digest in zip(paths, sha256_files(paths), strict=True)
    }


def recorded_files(folder: Path) -> dict[str, dict[str, Any]] | None:
    """What the seal recorded, or None for a folder without a marker or sealed before files were recorded."""
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{str(marker)!r} is not valid JSON ({exc}); the step's seal is damaged") from None
    files = data.get(FILES_KEY) if isinstance(data, dict) else None
    return files if isinstance(files, dict) else None


def verify_sealed(folder: Path, *, with_state: bool, actual: dict[str, tuple[int, str]] | None = None) -> None:
    """Raise a one-line StoreError unless every file the seal recorded (the model's; the resume state's too
    with `with_state`) is present with the same size and sha256. `actual` (path -> size, sha256) is used when
    the caller has hashed the files already; a folder sealed without a record passes."""
    folder = Path(folder)
    recorded = recorded_files(folder)
    if recorded is None:
        return
    wanted = {path: entry for path, entry in recorded.items() if with_state or not is_state_path(path)}
    if actual is None:
        present = [path for path in wanted if (folder / path).is_file()]
        digests = sha256_files([folder / path for path in present])
        actual = {path: ((folder / path).stat().st_size, digest) for path, digest in zip(present, digests, strict=True)}
    for path, entry in sorted(wanted.items()):
        if path not in actual:
            raise StoreError(f"{str(folder / path)!r} is missing; the step was sealed with it ({MARKER})")
        size, digest = actual[path]
        if size != entry["size"] or digest != entry["sha256"]:
            raise StoreError(
                f"{str(folder / path)!r} changed after the step was sealed: {size} bytes, sha256 {digest[:12]}…, "
                f"{MARKER} says {entry['size']} bytes, {str(entry['sha256'])[:12]}…; restore it or use another step"
            )


def check_weight_files(folder: Path) -> None:
    """A truncated, damaged or non-finite safetensors file, refused in one line before any backend loads it: the
    header and the file's length, then every tensor's values (a NaN or inf weight samples garbage, or crashes the
    sampler, far from its cause). One memory-mapped pass, tensor by tensor, against the full load that follows."""
    import torch
    from safetensors import safe_open

    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as weights:
                for name in weights.keys():  # noqa: SIM118  safe_open has no __iter__
                    tensor = weights.get_tensor(name)
                    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                        raise ModelError(
                            f"weight file {str(path)!r} holds NaN or infinite values in {name!r}; the model is "
                            "damaged (a diverged run, or edited bytes): restore it or evaluate another step"
                        )
        except ModelError:
            raise
        except Exception as exc:  # SafetensorError, or OSError reading it
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"weight file {str(path)!r} is truncated or damaged ({reason}); restore it") from None


def check_tokenizer_files(folder: Path) -> None:
    """A local model folder without its tokenizer generates garbage: refuse it before loading anything."""
    folder = Path(folder)
    is_model = folder.is_dir() and (folder / "config.json").is_file()
    if is_model and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(
            f"model folder {str(folder)!r} has no tokenizer ({', '.join(TOKENIZER_FILES)}); copy the tokenizer "
            "files in beside the weights"
        )
