"""Checkpoint stores: local folders and S3, with integrity manifests.

`open_store(uri, cfg)` is the one entry point; every store speaks the protocol in `base.py`.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.store.base import CheckpointStore, PushResult, StepListing
from emtune.store.layout import STEP_PATTERN

__all__ = ["CheckpointStore", "PushResult", "StepListing", "StoreConfig", "open_store", "split_step_uri"]

SCHEMES = ("s3://", "file://", "a plain path")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_STEP_SUFFIX = re.compile(rf"^(.*?)/+{STEP_PATTERN}/*$")


def open_store(uri: str, cfg: StoreConfig) -> CheckpointStore:
    """A store for `s3://bucket/prefix`, `file:///abs/path` or a plain path."""
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match else None
    if scheme is None:
        from emtune.store.local import LocalStore

        return LocalStore(Path(uri).expanduser())
    rest = uri[match.end() :] if match else uri
    if scheme == "file":
        from emtune.store.local import LocalStore

        if not rest.startswith("/"):
            raise StoreError(f"store URI {uri!r} must be file:///absolute/path (three slashes)")
        return LocalStore(Path(unquote(rest)))
    if scheme == "s3":
        from emtune.store.s3 import S3Store

        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StoreError(f"store URI {uri!r} names no bucket; expected s3://bucket/prefix")
        return S3Store(bucket, prefix, cfg)
    raise StoreError(f"store URI {uri!r} has scheme '{scheme}://'; allowed: {', '.join(SCHEMES)}")


def split_step_uri(uri: str) -> tuple[str, int | None]:
    """`<run>/step-N` → (`<run>`, N); any other URI → (uri, None)."""
    match = _STEP_SUFFIX.match(uri)
    if match and match.group(1) and not match.group(1).endswith(":"):
        return match.group(1), int(match.group(2))
    return uri, None
