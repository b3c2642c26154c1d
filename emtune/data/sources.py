"""Reading a table of records from wherever a user keeps it: a local file, an S3 object, or a Hugging Face dataset.

Every reader returns the same `SourceTable` (column names, rows as dicts, the sha256 of what was read), so
prep and the benchmark registry validate one shape whatever the origin.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emtune.config.store import StoreConfig
from emtune.errors import DataError
from emtune.fsutil import parse_jsonl

log = logging.getLogger(__name__)

FILE_FORMATS = ("parquet", "jsonl", "json", "csv")
_SUFFIX_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
}


class SourceNotFound(DataError):
    """The file or object does not exist (as opposed to existing but being unreadable)."""


@dataclass(frozen=True)
class SourceTable:
    uri: str
    columns: list[str]
    records: list[dict[str, Any]]
    sha256: str  # of the bytes read; for hf:// datasets, of the rows as canonical JSON


@dataclass(frozen=True)
class HfSource:
    path: str
    config: str | None
    split: str | None


def parse_hf_uri(uri: str) -> HfSource:
    """hf://org/name[:config][@split] -> its parts. A local folder path after hf:// also works (offline)."""
    rest = uri.removeprefix("hf://")
    rest, at, split = rest.partition("@")
    path, colon, config = rest.partition(":")
    if not path.strip("/") or (at and not split) or (colon and not config):
        raise DataError(f"Hugging Face source {uri!r} is malformed; expected hf://org/name[:config][@split]")
    return HfSource(path=path, config=config or None, split=split or None)


def read_source(uri: str, *, fmt: str = "auto", store: StoreConfig | None = None) -> SourceTable:
    """Read every record of `uri` (local path, file://, s3://bucket/key or hf://...)."""
    if uri.startswith("hf://"):
        return _read_hf(uri)
    if uri.startswith("s3://"):
        data = _fetch_s3(uri, store or StoreConfig.model_validate({}))
    else:
        data = _read_local(Path(uri.removeprefix("file://")), uri)
    columns, records = parse_records(data, _format_of(uri, fmt), uri)
    return SourceTable(uri=uri, columns=columns, records=records, sha256=hashlib.sha256(data).hexdigest())


def local_source_paths(uri: str) -> list[Path]:
    """The local file or folder a source names (none for s3:// and hub datasets), so an output keeps off it."""
    if uri.startswith("s3://"):
        return []
    if uri.startswith("hf://"):
        folder = Path(parse_hf_uri(uri).path)
        return [folder] if folder.exists() else []
    return [Path(uri.removeprefix("file://"))]


def _format_of(uri: str, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in FILE_FORMATS:
            raise DataError(f"source format {fmt!r} is unknown; allowed: auto, {', '.join(FILE_FORMATS)}")
        return fmt
    suffix = Path(uri.rstrip("/")).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        allowed = ", ".join(sorted(_SUFFIX_FORMATS))
        raise DataError(f"source {uri!r} has unknown format {suffix or '(no suffix)'!r}; allowed suffixes: {allowed}")
    return _SUFFIX_FORMATS[suffix]


def _read_local(path: Path, uri: str) -> bytes:
    if path.is_dir():
        raise DataError(f"source {uri!r} is a folder; give a .parquet, .jsonl, .json or .csv file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceNotFound(f"source file {uri!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"source file {uri!r} is unreadable: {exc.strerror or exc}") from None


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise DataError(f"S3 source {uri!r} is malformed; expected s3://bucket/key")
    return bucket, key


def _fetch_s3(uri: str, store: StoreConfig) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    from emtune.s3client import make_s3_client

    bucket, key = split_s3_uri(uri)
    if not key or key.endswith("/"):
        raise DataError(f"S3 source {uri!r} names a prefix, not an object; expected s3://bucket/key")
    try:
        body = make_s3_client(store).get_object(Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise SourceNotFound(f"S3 object {uri!r} does not exist") from None
        raise DataError(f"S3 object {uri!r} is unreachable: {code or exc}") from None
    except BotoCoreError as exc:
        raise DataError(f"S3 object {uri!r} is unreachable: {exc}") from None


def parse_records(data: bytes, fmt: str, uri: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Decode file bytes of a known format into (column names in first-seen order, rows)."""
    if fmt == "parquet":
        return _parse_parquet(data, uri)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"source {uri!r} is not UTF-8 text (byte {exc.start})") from None
    if fmt == "jsonl":
        rows = parse_jsonl(text, f"source {uri!r}")
        return _columns(rows), rows
    if fmt == "json":
        return _parse_json(text, uri)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = [dict(row) for row in reader]
    except csv.Error as exc:
        raise DataError(f"source {uri!r} is not valid CSV (line {reader.line_num}): {exc}") from None
    if any(None in row for row in rows):  # DictReader files extra cells under the key None
        raise DataError(f"source {uri!r} has rows with more cells than its header has columns")
    return list(reader.fieldnames or []), rows


def _parse_parquet(data: bytes, uri: str) -> tuple[list[str], list[dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"source {uri!r} is unreadable as parquet (corrupt or truncated?): {str(exc).splitlines()[0]}"
        ) from None
    return list(table.column_names), table.to_pylist()


def _parse_json(text: str, uri: str) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"source {uri!r} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise DataError(f"source {uri!r} must hold a JSON list of objects (one per problem)")
    return _columns(rows), rows


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _read_hf(uri: str) -> SourceTable:
    source = parse_hf_uri(uri)
    try:
        import datasets
    except ImportError:
        raise DataError(f"source {uri!r} needs the `datasets` package: pip install 'emtune[data]'") from None
    local = Path(source.path)
    try:
        if (local / "dataset_info.json").is_file() or (local / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(local))  # a folder written by save_to_disk
        else:
            loaded = datasets.load_dataset(source.path, source.config, split=source.split)
    except Exception as exc:  # datasets raises many unrelated types for "cannot load"
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"Hugging Face source {uri!r} cannot be loaded: {first_line}") from None
    dataset = _one_split(loaded, source.split, uri)
    rows = dataset.to_list()
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
    return SourceTable(uri=uri, columns=list(dataset.column_names), records=rows, sha256=digest)


def _one_split(loaded: Any, split: str | None, uri: str) -> Any:
    if not hasattr(loaded, "keys"):  # already a single Dataset
        return loaded
    splits = list(loaded.keys())
    if split is not None:
        if split not in splits:
            raise DataError(f"Hugging Face source {uri!r} has no split {split!r}; splits: {', '.join(splits)}")
        return loaded[split]
    if len(splits) != 1:
        raise DataError(f"Hugging Face source {uri!r} has splits {', '.join(splits)}; pick one with @split")
    return loaded[splits[0]]
