"""`emtune ckpt ...` against moto's S3 server: push, ls, latest, verify, pull, rm; errors exit 2 in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from emtune.cli import app
from emtune.store import open_store

pytest_plugins = ["s3_servers"]

runner = CliRunner()


def ckpt(*args: str, cfg) -> str:
    result = runner.invoke(app, ["ckpt", *args, "--endpoint-url", cfg.endpoint_url, "--set", "store.path_style=true"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_ckpt_commands_round_trip(s3_server, s3_store_config, s3_bucket, make_step_dir, tmp_path):
    run_uri = f"s3://{s3_bucket}/cli-run"
    for step in (1, 2):
        assert f"{run_uri}/step-{step}: 6 files sent" in ckpt(
            "push", str(make_step_dir(step)), run_uri, cfg=s3_store_config
        )

    assert ckpt("latest", run_uri, cfg=s3_store_config).strip() == f"{run_uri}/step-2"
    listing = ckpt("ls", run_uri, cfg=s3_store_config)
    assert [line.split()[:2] for line in listing.splitlines()] == [
        [f"{run_uri}/step-1", "complete"],
        [f"{run_uri}/step-2", "complete"],
    ]
    assert listing.splitlines()[1].endswith("latest")
    assert ckpt("verify", run_uri, cfg=s3_store_config).split() == [
        "ok",
        f"{run_uri}/step-1",
        "ok",
        f"{run_uri}/step-2",
    ]

    pulled = ckpt("pull", f"{run_uri}/step-1", str(tmp_path / "pulled"), cfg=s3_store_config).strip()
    assert (tmp_path / "pulled" / "checkpoint.json").is_file() and pulled == str(tmp_path / "pulled")

    assert ckpt("rm", run_uri, "--keep-last", "1", cfg=s3_store_config).strip() == f"removed {run_uri}/step-1"
    assert ckpt("rm", f"{run_uri}/step-2", cfg=s3_store_config).strip() == f"removed {run_uri}/step-2"
    assert open_store(run_uri, s3_store_config).listing() == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_push_reads_the_step_from_the_folder_and_refuses_a_conflicting_one(
    s3_server, s3_store_config, s3_bucket, make_step_dir
):
    folder = make_step_dir(4)
    result = runner.invoke(
        app,
        [
            "ckpt",
            "push",
            str(folder),
            f"s3://{s3_bucket}/r/step-3",
            "--endpoint-url",
            s3_store_config.endpoint_url,
            "--set",
            "store.path_style=true",
        ],
    )
    assert "conflicting steps" in str(result.exception)
    ckpt("push", str(folder), f"s3://{s3_bucket}/r", cfg=s3_store_config)
    manifest = open_store(f"s3://{s3_bucket}/r", s3_store_config).read_manifest(4)
    assert (manifest.run_id, manifest.config_hash, manifest.metrics) == ("run-abc", "cafef00d", {"entropy": 0.25})


def test_user_errors_exit_2_with_one_line(tmp_path):
    unknown = subprocess.run(
        [sys.executable, "-m", "emtune", "ckpt", "ls", "gs://bucket/run"], capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 2
    assert "scheme 'gs://'; allowed: s3://, file://, a plain path" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_ls_of_a_store_that_does_not_exist_says_so(tmp_path):
    missing = tmp_path / "no-such-store"
    result = subprocess.run(
        [sys.executable, "-m", "emtune", "ckpt", "ls", missing.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert f"store {missing.as_uri()} does not exist" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not missing.exists()


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_ls_of_an_empty_s3_prefix_says_it_does_not_exist(s3_server, s3_store_config, s3_bucket):
    result = runner.invoke(
        app,
        [
            "ckpt",
            "ls",
            f"s3://{s3_bucket}/nothing-here",
            "--endpoint-url",
            s3_store_config.endpoint_url,
            "--set",
            "store.path_style=true",
        ],
    )
    assert f"store s3://{s3_bucket}/nothing-here does not exist" in str(result.exception)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_push_of_a_folder_without_marker_is_model_only_and_ls_tells_steps_apart(
    s3_server, s3_store_config, s3_bucket, make_step_dir
):
    run_uri = f"s3://{s3_bucket}/mixed"
    ckpt("push", str(make_step_dir(1)), run_uri, cfg=s3_store_config)
    plain = make_step_dir(2)
    (plain / "checkpoint.json").unlink()  # not sealed by the trainer: a plain model (its state is not pushed)
    assert f"{run_uri}/step-2: 3 files sent" in ckpt("push", str(plain), run_uri, cfg=s3_store_config)

    store = open_store(run_uri, s3_store_config)
    assert [store.read_manifest(step).kind for step in (1, 2)] == ["step", "model"]
    assert store.state_steps() == [1]
    lines = ckpt("ls", run_uri, cfg=s3_store_config).splitlines()
    assert "resumable" in lines[0] and "model-only" in lines[1] and lines[1].endswith("latest")
