"""The components' run-parameter inputs are plain, committed source, generated from the config model and fresh."""

from __future__ import annotations

import dataclasses
import inspect
import shutil
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from emtune.components import eval_pairs, evaluate, prep, promote, report, train
from emtune.pipeline import component_inputs, steps
from emtune.pipeline.component_inputs import END, START, main, render, stale_modules
from emtune.pipeline.params import param_specs, run_parameters_from

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
CONFIGURED = (prep, train, evaluate, report, promote)  # the components that resolve the run's config


def test_component_sources_are_fresh() -> None:
    assert stale_modules(COMPONENTS, write=False) == [], "run: make docs"


def test_a_new_config_key_makes_every_configured_component_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "components"
    shutil.copytree(COMPONENTS, folder)
    added = dataclasses.replace(param_specs()[0], name="train_new_knob", key="train.new_knob", kfp_type=float)
    monkeypatch.setattr(component_inputs, "param_specs", lambda: [*param_specs(), added])

    expected = sorted(folder / f"{m.__name__.rsplit('.', 1)[1]}.py" for m in CONFIGURED)
    assert main(["--check", str(folder)]) == 1
    assert stale_modules(folder, write=True) == expected
    assert stale_modules(folder, write=False) == []
    assert "    train_new_knob: float,\n    # End of run parameters." in (folder / "train.py").read_text()
    assert (folder / "eval_pairs.py").read_text() == (COMPONENTS / "eval_pairs.py").read_text()


def test_each_configured_component_takes_every_run_parameter_as_kfp_types_it() -> None:
    specs = param_specs()
    for module in CONFIGURED:
        component = module.component()
        inputs = component.component_spec.inputs or {}
        own = set(inspect.signature(component.python_func).parameters) - {spec.name for spec in specs}
        assert "compile_time_config" in own, module.__name__
        for spec in specs:
            expected = {str: "String", int: "Integer", float: "Float", bool: "Boolean", list: "List", dict: "Dict"}
            assert inputs[spec.name].type == expected[spec.kfp_type], (module.__name__, spec.name)
            assert not inputs[spec.name].optional, (module.__name__, spec.name)  # the pipeline passes each one
    assert not set(eval_pairs.component().component_spec.inputs or {}) & {spec.name for spec in specs}


def test_run_parameters_from_picks_them_among_other_inputs() -> None:
    values = {spec.name: f"value of {spec.name}" for spec in param_specs()}
    assert run_parameters_from({"compile_time_config": "x", "prompts": object(), **values}) == values
    with pytest.raises(KeyError, match="train_max_steps"):
        run_parameters_from({k: v for k, v in values.items() if k != "train_max_steps"})


def test_each_body_hands_its_step_the_config_and_every_run_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The step functions themselves run in the kfp.local pipeline tests; here, what each body passes them."""
    artifact = SimpleNamespace(path="/artifact", log_metric=print)
    own_inputs: dict[ModuleType, tuple[str, dict[str, Any]]] = {
        prep: ("prep_step", {"prompts": artifact}),
        train: ("train_step", {"prompts": artifact, "run_id": "r", "metrics": artifact}),
        evaluate: ("eval_step", {"model": "m", "step": 1, "benchmark": "b", "results": artifact}),
        report: (
            "report_step",
            {
                "run_id": "r",
                "eval_results": [artifact],
                "train_metrics": artifact,
                "report": artifact,
                "html": artifact,
                "metrics": artifact,
            },
        ),
        promote: ("promote_step", {"run_id": "r", "report": artifact, "promotion": artifact}),
    }
    values = {spec.name: f"value of {spec.name}" for spec in param_specs()}
    for module, (step, inputs) in own_inputs.items():
        calls: list[tuple[object, ...]] = []
        monkeypatch.setattr(steps, step, lambda *args, calls=calls: calls.append(args))
        module.component().python_func(compile_time_config="baked", **inputs, **values)
        ((config, parameters, *_),) = calls
        assert (config, parameters) == ("baked", values), module.__name__


def test_render_keeps_the_marker_indentation_and_refuses_an_unclosed_block() -> None:
    source = f"def f(\n    a: str,\n        {START}\n        stale: int,\n    {END}\n) -> None: ...\n"
    rendered = render(source)
    assert rendered.startswith(f"def f(\n    a: str,\n        {START}\n        run_name: str,\n")
    assert rendered.endswith(f"    {END}\n) -> None: ...\n") and "stale" not in rendered
    assert render("def g() -> None: ...\n") == "def g() -> None: ...\n"
    with pytest.raises(ValueError, match="never closes"):
        render(f"def f(\n    {START}\n    a: str,\n) -> None: ...\n", "f.py")
