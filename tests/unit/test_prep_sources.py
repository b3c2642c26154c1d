"""Remote-style sources for prep and benchmarks: a real S3 HTTP server (moto, on 127.0.0.1) and Hugging Face
datasets loaded offline from local folders. Nothing here touches the network."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from emtune.config import load_config
from emtune.config.store import StoreConfig
from emtune.data import prep
from emtune.data.benchmarks import load_benchmark
from emtune.data.sources import parse_hf_uri, read_source
from emtune.errors import DataError
from emtune.s3client import make_s3_client
from emtune.store.local_s3 import LocalS3Server, moto_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalS3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture
def s3_store(moto: LocalS3Server, monkeypatch: pytest.MonkeyPatch) -> StoreConfig:
    """Dummy credentials in the environment, endpoint and path-style addressing in the config."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    return StoreConfig(endpoint_url=moto.endpoint_url, path_style=True, max_attempts=1, connect_timeout_s=2.0)


@pytest.fixture
def bucket(s3_store: StoreConfig, request: pytest.FixtureRequest) -> str:
    name = f"data-{request.node.name.lower().replace('_', '-')[:40]}"
    make_s3_client(s3_store).create_bucket(Bucket=name)
    return name


def put(store: StoreConfig, bucket: str, key: str, path: Path) -> None:
    make_s3_client(store).put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


def test_prep_reads_an_s3_object(s3_store: StoreConfig, bucket: str, tmp_path: Path) -> None:
    source = FIXTURES / "prompts" / "problems.jsonl"
    put(s3_store, bucket, "sets/problems.jsonl", source)
    cfg = load_config(None, {"data.source": f"s3://{bucket}/sets/problems.jsonl", "data.id": "p2"})
    cfg.store = s3_store
    out = prep.run(cfg, out=tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_read"] == 6 and manifest["source"] == f"s3://{bucket}/sets/problems.jsonl"
    assert manifest["source_sha256"] == read_source(str(source)).sha256  # same bytes, same digest


def test_missing_s3_object_is_a_clear_error(s3_store: StoreConfig, bucket: str, tmp_path: Path) -> None:
    cfg = load_config(None, {"data.source": f"s3://{bucket}/nope.parquet"})
    cfg.store = s3_store
    with pytest.raises(DataError, match=rf"S3 object 's3://{bucket}/nope.parquet' does not exist"):
        prep.run(cfg, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreachable_s3_endpoint_is_a_clear_error(s3_store: StoreConfig, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = load_config(None, {"data.source": "s3://bucket/problems.jsonl"})
    cfg.store = s3_store.model_copy(update={"endpoint_url": f"http://127.0.0.1:{port}"})
    with pytest.raises(DataError, match=r"S3 object 's3://bucket/problems.jsonl' is unreachable: .*127\.0\.0\.1"):
        prep.run(cfg, out=tmp_path / "out")


def test_s3_prefix_is_not_an_object(s3_store: StoreConfig) -> None:
    with pytest.raises(DataError, match=r"names a prefix, not an object"):
        read_source("s3://bucket/sets/", store=s3_store)


def test_benchmark_from_an_s3_prefix_in_harness_layout(s3_store: StoreConfig, bucket: str) -> None:
    put(s3_store, bucket, "evalsets/amc23/test.jsonl", FIXTURES / "benchmarks" / "amc23" / "test.jsonl")
    benchmark = load_benchmark("amc23", f"s3://{bucket}/evalsets", check_count=False, store=s3_store)
    assert [item.gold for item in benchmark.items] == ["27", "-1", "2.5"]
    assert benchmark.source == f"s3://{bucket}/evalsets/amc23/test.jsonl"
    with pytest.raises(DataError, match=r"not found: looked for .*evalsets/aime24/test\.jsonl.*evalsets/test\.jsonl"):
        load_benchmark("aime24", f"s3://{bucket}/evalsets", store=s3_store)


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    import datasets.config  # read the variable at its first import: patch the module too

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def test_hf_saved_dataset_and_data_folder(hf_offline: None, tmp_path: Path) -> None:
    import datasets

    rows = [json.loads(line) for line in (FIXTURES / "prompts" / "problems.jsonl").read_text().splitlines()]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
    saved = read_source(f"hf://{tmp_path / 'saved'}@train")
    assert saved.columns == ["id", "problem", "answer"] and saved.records == rows
    assert read_source(f"hf://{tmp_path / 'saved'}").sha256 == saved.sha256  # the only split is the default

    benchmark = load_benchmark("aime25", f"hf://{FIXTURES / 'benchmarks' / 'aime25'}@test", check_count=False)
    assert [item.gold for item in benchmark.items] == ["55", "90^\\circ", "49"]
    with pytest.raises(DataError, match=r"has no split 'validation'; splits: train"):
        read_source(f"hf://{tmp_path / 'saved'}@validation")
    with pytest.raises(DataError, match=r"cannot be loaded: .*validation"):
        read_source(f"hf://{FIXTURES / 'benchmarks' / 'aime25'}@validation")


def test_hf_hub_id_offline_fails_cleanly(hf_offline: None) -> None:
    with pytest.raises(DataError, match=r"Hugging Face source 'hf://no-such-org/no-such-set@test' cannot be loaded"):
        read_source("hf://no-such-org/no-such-set@test")


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("hf://org/name", ("org/name", None, None)),
        ("hf://org/name@test", ("org/name", None, "test")),
        ("hf://org/name:OE_maths@train", ("org/name", "OE_maths", "train")),
    ],
)
def test_hf_uri_parts(uri: str, parts: tuple[str, str | None, str | None]) -> None:
    parsed = parse_hf_uri(uri)
    assert (parsed.path, parsed.config, parsed.split) == parts


@pytest.mark.parametrize("uri", ["hf://", "hf://org/name@", "hf://org/name:@test"])
def test_malformed_hf_uri(uri: str) -> None:
    with pytest.raises(DataError, match=r"expected hf://org/name\[:config\]\[@split\]"):
        parse_hf_uri(uri)
