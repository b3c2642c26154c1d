"""Promotion into a real MLflow server (sqlite backend, 127.0.0.1): a version per run's chosen step whose source is
its store URI, tagged with provenance and scores; re-running makes no duplicate; the champion alias moves only for
a promoted step that beats the champion."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from promote_support import write_eval

from emtune.config.promote import PromoteConfig
from emtune.promote.run import promote

pytest_plugins = ["mlflow_server"]

BASE = [2, 3, 4, 5] * 10  # 40 problems, 8 samples each: 43.8% at step 0


def lifted(by: int) -> list[int]:
    return [min(8, c + by) for c in BASE]


@pytest.mark.slow  # ~80 s on 2 cores: the server's start and its sqlite schema
def test_promote_rerun_better_and_worse_runs(mlflow_server: str, tmp_path: Path) -> None:
    cfg = PromoteConfig(registry_uri=mlflow_server, model_name="emtune-test")
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)

    def run(name: str, steps: dict[int, list[int]]):  # type: ignore[no-untyped-def]
        evals = write_eval(tmp_path / name, f"s3://ckpts/emtune/{name}", steps)
        return promote(cfg, [evals], run_id=name, config_hash=f"hash-{name}")

    first = run("run-a", {0: BASE, 2: lifted(1), 4: lifted(2)})
    assert first.decision.promoted and first.created and first.alias_moved
    version = client.get_model_version("emtune-test", first.version)
    assert version.source == "s3://ckpts/emtune/run-a/step-4"
    assert version.tags["emtune.run_id"] == "run-a"
    assert version.tags["emtune.config_hash"] == "hash-run-a"
    assert version.tags["emtune.step"] == "4"
    assert float(version.tags["emtune.score.amc23"]) == pytest.approx(first.decision.score)
    assert '"temperature": 1.0' in version.tags["emtune.eval"]
    assert client.get_model_version_by_alias("emtune-test", "champion").version == first.version

    rerun = promote(cfg, [tmp_path / "run-a"], run_id="run-a", config_hash="hash-run-a")
    assert rerun.version == first.version and rerun.created is False
    assert len(client.search_model_versions("name = 'emtune-test'")) == 1

    better = run("run-b", {0: BASE, 2: lifted(3)})
    assert better.alias_moved and better.champion == better.version != first.version
    worse = run("run-c", {0: BASE, 2: lifted(1)})  # promoted against its own step 0, below run-b's champion
    assert worse.decision.promoted and not worse.alias_moved
    assert "kept on version" in worse.note
    noise = run("run-d", {0: BASE, 2: [*BASE[:-1], 6]})  # one problem better: within noise
    assert not noise.decision.promoted and not noise.alias_moved
    assert client.get_model_version_by_alias("emtune-test", "champion").version == better.version
    versions = {v.version: v.tags["emtune.promoted"] for v in client.search_model_versions("name = 'emtune-test'")}
    assert versions[noise.version] == "false" and versions[better.version] == "true"
    assert len(versions) == 4
