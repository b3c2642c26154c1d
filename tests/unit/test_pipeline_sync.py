"""`emtune pipeline sync`: idempotent registration and schedule reconciliation, over an in-memory KFP state.

The KFP calls' wire format is checked against KFP's published API in tests/integration/test_kfp_contract.py;
here a stand-in with KFP's semantics (ids, names, recurring-run status, filters) checks the logic: what a
second sync does (nothing), and how listed, changed, paused and removed schedules are reconciled.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from common import alias_workflows

from emtune.config import load_config
from emtune.errors import ConfigError
from emtune.pipeline.params import param_values
from emtune.runs.sync import MANAGED_MARK, load_schedules, remove_schedules, sync, version_name

alias_workflows()

from emtune.workflows.emtune_pipeline import compile_pipeline  # noqa: E402

BASE = {"store": {"uri": "s3://ckpts/emtune"}, "eval": {"benchmarks": ["demo-arith"]}}


class InMemoryKfp:
    """kfp.Client's pipeline, experiment and recurring-run calls over in-memory state, with every mutation logged."""

    def __init__(self) -> None:
        self.ids = (f"id-{n}" for n in itertools.count())
        self.pipelines: dict[str, str] = {}  # name -> id
        self.versions: dict[str, list[SimpleNamespace]] = {}
        self.experiments: dict[str, str] = {}
        self.recurring: dict[str, SimpleNamespace] = {}
        self.mutations: list[str] = []

    def list_pipelines(self, filter: str, namespace: str | None, page_size: int) -> Any:
        (predicate,) = json.loads(filter)["predicates"]
        key = f"{namespace}/{predicate['stringValue']}"  # multi-user KFP: pipelines per namespace
        if key not in self.pipelines:
            return SimpleNamespace(pipelines=None)
        return SimpleNamespace(
            pipelines=[SimpleNamespace(display_name=predicate["stringValue"], pipeline_id=self.pipelines[key])]
        )

    def upload_pipeline(self, path: str, pipeline_name: str, namespace: str | None) -> Any:
        pipeline_id = self.pipelines[f"{namespace}/{pipeline_name}"] = next(self.ids)
        first = SimpleNamespace(display_name=pipeline_name, pipeline_version_id=next(self.ids))
        self.versions[pipeline_id] = [first]  # KFP names the first version after the pipeline
        self.mutations.append(f"upload_pipeline {pipeline_name}")
        return SimpleNamespace(pipeline_id=pipeline_id)

    def list_pipeline_versions(self, pipeline_id: str, page_size: int, filter: str) -> Any:
        (predicate,) = json.loads(filter)["predicates"]
        wanted = [v for v in self.versions[pipeline_id] if v.display_name == predicate["stringValue"]]
        return SimpleNamespace(pipeline_versions=wanted or None)

    def upload_pipeline_version(self, path: str, pipeline_version_name: str, pipeline_id: str) -> Any:
        version = SimpleNamespace(display_name=pipeline_version_name, pipeline_version_id=next(self.ids))
        self.versions[pipeline_id].append(version)
        self.mutations.append(f"upload_pipeline_version {pipeline_version_name}")
        return version

    def get_experiment(self, experiment_name: str, namespace: str | None) -> Any:
        if experiment_name not in self.experiments:
            raise ValueError(f"No experiment is found with name {experiment_name}.")  # as kfp.Client does
        return SimpleNamespace(experiment_id=self.experiments[experiment_name])

    def create_experiment(self, name: str, namespace: str | None) -> Any:
        if name not in self.experiments:
            self.experiments[name] = next(self.ids)
            self.mutations.append(f"create_experiment {name}")
        return SimpleNamespace(experiment_id=self.experiments[name])

    def list_recurring_runs(self, page_token: str, page_size: int, experiment_id: str, namespace: str | None) -> Any:
        runs = [r for r in self.recurring.values() if r.experiment_id == experiment_id]
        start = int(page_token or 0)
        page = runs[start : start + 1]  # one per page: pagination must be followed
        more = start + 1 < len(runs)
        return SimpleNamespace(recurring_runs=page or None, next_page_token=str(start + 1) if more else "")

    def create_recurring_run(self, **kwargs: Any) -> Any:
        run_id = next(self.ids)
        self.recurring[run_id] = SimpleNamespace(
            recurring_run_id=run_id,
            display_name=kwargs["job_name"],
            description=kwargs["description"],
            status="ENABLED" if kwargs["enabled"] else "DISABLED",
            **{k: kwargs[k] for k in ("experiment_id", "cron_expression", "params", "version_id", "service_account")},
        )
        self.mutations.append(f"create_recurring_run {kwargs['job_name']}")
        return self.recurring[run_id]

    def enable_recurring_run(self, run_id: str) -> dict[str, Any]:
        self.recurring[run_id].status = "ENABLED"
        self.mutations.append(f"enable {self.recurring[run_id].display_name}")
        return {}

    def disable_recurring_run(self, run_id: str) -> dict[str, Any]:
        self.recurring[run_id].status = "DISABLED"
        self.mutations.append(f"disable {self.recurring[run_id].display_name}")
        return {}

    def delete_recurring_run(self, run_id: str) -> dict[str, Any]:
        self.mutations.append(f"delete {self.recurring.pop(run_id).display_name}")
        return {}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return compile_pipeline(load_config(None, {"store.uri": "s3://ckpts/emtune"}), tmp_path / "pipeline.yaml")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    return path


def run_sync(kfp: InMemoryKfp, package: Path, config: Path, schedules: dict[str, Any] | None) -> Any:
    kfp.mutations.clear()
    return sync(
        kfp,
        package,
        config=config,
        pipeline_name="emtune-pipeline",
        experiment="emtune",
        schedules=load_schedules(schedules) if schedules is not None else None,
    )


NIGHTLY = {"name": "nightly", "cron": "0 3 * * *", "set": {"train.max_steps": 10}}
WEEKLY = {"name": "weekly", "cron": "0 0 4 * * 0", "enabled": False}


def test_version_name_comes_from_emtunes_version_and_the_spec(package: Path, tmp_path: Path) -> None:
    import emtune

    name = version_name("emtune-pipeline", package)
    assert name.startswith(f"emtune-pipeline-v{emtune.__version__}-") and len(name.rsplit("-", 1)[1]) == 12
    other = compile_pipeline(
        load_config(None, {"store.uri": "s3://b/p", "pipeline.parallelism": 9}), tmp_path / "o.yaml"
    )
    assert version_name("emtune-pipeline", other) != name


def test_first_sync_registers_then_a_second_changes_nothing(package: Path, config: Path) -> None:
    kfp = InMemoryKfp()
    schedules = {"service_account": "emtune-runner", "schedules": [NIGHTLY, WEEKLY]}
    first = run_sync(kfp, package, config, schedules)
    name = version_name("emtune-pipeline", package)
    assert kfp.mutations == [
        "upload_pipeline emtune-pipeline",
        f"upload_pipeline_version {name}",
        "create_experiment emtune",
        "create_recurring_run nightly",
        "create_recurring_run weekly",
    ]
    assert first.uploaded and first.created == ["nightly", "weekly"]
    runs = {r.display_name: r for r in kfp.recurring.values()}
    assert runs["nightly"].cron_expression == "0 0 3 * * *" and runs["nightly"].status == "ENABLED"
    assert runs["weekly"].status == "DISABLED"  # created paused
    assert runs["nightly"].params == param_values(load_config(config, {"train.max_steps": 10}))
    assert runs["nightly"].version_id == first.version_id and runs["nightly"].service_account == "emtune-runner"
    assert runs["nightly"].description.startswith(MANAGED_MARK)

    second = run_sync(kfp, package, config, schedules)
    assert kfp.mutations == []  # idempotent: a rerun of the hook touches nothing
    assert not second.uploaded and second.version_id == first.version_id
    assert second.unchanged == ["nightly", "weekly"]


def test_reconcile_pauses_resumes_replaces_and_deletes_only_its_own(package: Path, config: Path) -> None:
    kfp = InMemoryKfp()
    run_sync(kfp, package, config, {"schedules": [NIGHTLY, WEEKLY, {"name": "gone", "cron": "0 1 * * *"}]})
    # Someone's own recurring run in the same experiment: never touched.
    kfp.recurring["theirs"] = SimpleNamespace(
        recurring_run_id="theirs",
        display_name="nightly",
        description="made by hand",
        status="ENABLED",
        experiment_id=kfp.experiments["emtune"],
    )
    changed = {**NIGHTLY, "set": {"train.max_steps": 20}}
    result = run_sync(kfp, package, config, {"schedules": [changed, {**WEEKLY, "enabled": True}]})
    assert kfp.mutations == [
        "disable nightly",
        "delete nightly",
        "create_recurring_run nightly",  # KFP has no update: disable, delete, create
        "enable weekly",
        "disable gone",
        "delete gone",
    ]
    assert (result.replaced, result.resumed, result.deleted) == (["nightly"], ["weekly"], ["gone"])
    assert "theirs" in kfp.recurring
    result = run_sync(kfp, package, config, {"schedules": [changed, WEEKLY]})
    assert kfp.mutations == ["disable weekly"] and result.paused == ["weekly"]
    run_sync(kfp, package, config, {"schedules": []})
    assert set(kfp.recurring) == {"theirs"}


def test_a_new_pipeline_version_replaces_the_schedules_that_ran_the_old_one(
    package: Path, config: Path, tmp_path: Path
) -> None:
    kfp = InMemoryKfp()
    run_sync(kfp, package, config, {"schedules": [NIGHTLY]})
    upgraded = compile_pipeline(
        load_config(None, {"store.uri": "s3://b/p", "pipeline.parallelism": 9}), tmp_path / "u.yaml"
    )
    result = run_sync(kfp, upgraded, config, {"schedules": [NIGHTLY]})
    assert result.uploaded and result.replaced == ["nightly"]
    (run,) = kfp.recurring.values()
    assert run.version_id == result.version_id


def test_no_schedules_file_leaves_recurring_runs_alone(package: Path, config: Path) -> None:
    kfp = InMemoryKfp()
    run_sync(kfp, package, config, {"schedules": [NIGHTLY]})
    run_sync(kfp, package, config, None)
    assert kfp.mutations == [] and len(kfp.recurring) == 1


@pytest.mark.parametrize(
    ("schedules", "message"),
    [
        ({"schedules": [NIGHTLY, NIGHTLY]}, "repeated: ['nightly']"),
        ({"schedules": [{"name": "x", "cron": "daily"}]}, "not a valid cron schedule"),
        ({"schedules": [{"name": "x", "cron": "0 3 * * *", "every": 2}]}, "schedules.0.every"),
        ({"schedules": [{"name": "x", "cron": "0 3 * * *", "set": {"train.max_steps": 0}}]}, "train.max_steps"),
        ({"schedules": [{"name": "x", "cron": "0 3 * * *", "set": {"pipeline.parallelism": 2}}]}, "shape the compiled"),
    ],
)
def test_bad_schedules_fail_before_any_request(
    package: Path, config: Path, schedules: dict[str, Any], message: str
) -> None:
    kfp = InMemoryKfp()
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        run_sync(kfp, package, config, schedules)
    assert kfp.mutations == []


def test_cli_refuses_a_bad_schedules_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emtune.cli import main

    schedules = tmp_path / "schedules.yaml"
    schedules.write_text(yaml.safe_dump({"schedules": [{"name": "x", "cron": "every day"}]}), encoding="utf-8")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    # Port 9 on loopback has no KFP server: the file is refused before anything is sent.
    argv = ["emtune", "pipeline", "sync", "--host", "http://127.0.0.1:9", "--schedules", str(schedules)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [*argv, "--config", str(config)])
        with pytest.raises(SystemExit) as exit_:
            main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "schedules" in err and "'every day'" in err and "Traceback" not in err


def test_uninstall_removes_only_the_schedules_sync_created(package: Path, config: Path) -> None:
    kfp = InMemoryKfp()
    assert remove_schedules(kfp, experiment="emtune", pipeline_name="emtune-pipeline") == []  # nothing yet
    run_sync(kfp, package, config, {"schedules": [NIGHTLY, WEEKLY]})
    kfp.recurring["theirs"] = SimpleNamespace(
        recurring_run_id="theirs",
        display_name="mine",
        description="made by hand",
        status="ENABLED",
        experiment_id=kfp.experiments["emtune"],
    )
    kfp.mutations.clear()
    deleted = remove_schedules(kfp, experiment="emtune", pipeline_name="emtune-pipeline")
    assert sorted(deleted) == ["nightly", "weekly"]
    assert kfp.mutations == ["disable nightly", "delete nightly", "delete weekly"]  # a paused one needs no disable
    assert set(kfp.recurring) == {"theirs"}
    # Another pipeline's release in the same experiment keeps its schedules.
    assert remove_schedules(kfp, experiment="emtune", pipeline_name="other-pipeline") == []


def test_each_namespace_registers_its_own_pipeline(package: Path, config: Path) -> None:
    """Multi-user KFP: a profile's sync never adds versions to another profile's (or the shared) pipeline."""
    kfp = InMemoryKfp()
    run_sync(kfp, package, config, None)
    team = sync(kfp, package, config=config, pipeline_name="emtune-pipeline", experiment="emtune", namespace="team-a")
    assert team.uploaded and set(kfp.pipelines) == {"None/emtune-pipeline", "team-a/emtune-pipeline"}
    assert team.pipeline_id == kfp.pipelines["team-a/emtune-pipeline"]


def test_the_registered_version_is_recorded_for_the_dashboard(package: Path, config: Path, tmp_path: Path) -> None:
    from emtune.runs.sync import read_registered, registered_record

    result = run_sync(InMemoryKfp(), package, config, None)
    record = tmp_path / "version.json"
    assert read_registered(record) is None  # not synced yet
    record.write_text(registered_record(result, "emtune-pipeline"), encoding="utf-8")
    assert read_registered(record) == (result.pipeline_id, result.version_id)
    record.write_text("{not json", encoding="utf-8")
    assert read_registered(record) is None


def test_dashboard_runs_start_from_the_recorded_version_not_the_newest(
    package: Path, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone's later `submit` adds a newer version; the dashboard still uses what the hook registered."""
    from emtune.dashboard.kfp_launcher import KfpLauncher
    from emtune.dashboard.settings import DashboardSettings
    from emtune.runs.sync import REGISTERED_ENV, registered_record

    kfp = InMemoryKfp()
    result = run_sync(kfp, package, config, None)
    pipeline_id = kfp.pipelines["None/emtune-pipeline"]
    kfp.upload_pipeline_version(str(package), pipeline_version_name="someones-submit", pipeline_id=pipeline_id)
    spec = next(yaml.safe_load_all(package.read_text(encoding="utf-8")))

    def get_pipeline_version(pipeline_id: str, pipeline_version_id: str) -> Any:
        (version,) = [v for v in kfp.versions[pipeline_id] if v.pipeline_version_id == pipeline_version_id]
        return SimpleNamespace(**vars(version), pipeline_spec=spec)

    kfp.get_pipeline_version = get_pipeline_version  # type: ignore[attr-defined]
    record = tmp_path / "version.json"
    record.write_text(registered_record(result, "emtune-pipeline"), encoding="utf-8")
    monkeypatch.setenv(REGISTERED_ENV, str(record))
    launcher = KfpLauncher(DashboardSettings(launcher="kfp", kfp_host="http://kfp.example"), client_factory=lambda: kfp)
    got_pipeline, got_version, declared = launcher._latest_version()
    assert (got_pipeline, got_version) == (pipeline_id, result.version_id)
    assert declared and "train_learning_rate" in declared
