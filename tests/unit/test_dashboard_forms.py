"""The retrain form is generated from RunConfig and validated by it."""

from __future__ import annotations

from emtune.config import RunConfig, load_config
from emtune.dashboard.forms import (
    ADVANCED,
    config_diff,
    display,
    form_fields,
    form_items,
    multi_diff,
    parse_form,
    redact,
)
from emtune.pipeline.params import param_specs


def test_one_field_per_run_time_hyper_parameter_with_the_models_help_and_range() -> None:
    fields = {field.key: field for field in form_fields()}
    assert set(fields) == {spec.key for spec in param_specs()}  # the pipeline's parameters, exactly
    lr = fields["train.learning_rate"]
    assert (lr.kind, lr.allowed, lr.help) == ("float", "> 0, ≤ 1", "Peak learning rate of AdamW.")
    assert fields["train.reduction"].options == ("token_mean", "sequence_mean", "last_k")
    assert fields["train.lora.enabled"].kind == "bool" and fields["eval.benchmarks"].kind == "yaml"
    assert fields["eval.limit"].optional and fields["eval.limit"].kind == "int"


def test_parse_form_applies_changes_and_keeps_the_rest() -> None:
    source = load_config(None, {"train.max_steps": 7, "eval.limit": 3})
    result = parse_form(
        {
            "train.learning_rate": "1e-4",
            "eval.limit": "",
            "eval.benchmarks": "[demo-arith]",
            "train.lora.enabled": "true",
            "train.gradient_checkpointing": "false",
            ADVANCED: "pipeline: {eval_steps: [0, 7]}",
        },
        source,
    )
    assert result.errors == {}
    cfg = result.config
    assert cfg is not None
    assert cfg.train.learning_rate == 1e-4 and cfg.train.max_steps == 7
    assert cfg.eval.limit is None and cfg.eval.benchmarks == ["demo-arith"] and cfg.train.lora.enabled
    assert cfg.pipeline.eval_steps == [0, 7]
    keys = [key for key, _, _ in config_diff(source, cfg)]
    assert keys == ["train.learning_rate", "train.lora.enabled", "eval.benchmarks", "eval.limit", "pipeline.eval_steps"]


def test_errors_name_the_field_the_value_and_what_is_allowed() -> None:
    result = parse_form(
        {"train.max_steps": "0", "train.top_p": "abc", "train.strategy": "zero9", ADVANCED: "- not a mapping"},
        RunConfig(),
    )
    assert result.config is None
    assert result.errors[ADVANCED].startswith("advanced: expected a YAML mapping")
    result = parse_form({"train.max_steps": "0", "train.top_p": "abc", "train.strategy": "zero9"}, RunConfig())
    assert result.errors["train.max_steps"] == (
        "train.max_steps = '0': Input should be greater than or equal to 1 (allowed: ≥ 1)"
    )
    assert (
        "train.top_p = 'abc'" in result.errors["train.top_p"] and "(allowed: > 0, ≤ 1)" in result.errors["train.top_p"]
    )
    assert "'none', 'ddp', 'zero2' or 'zero3'" in result.errors["train.strategy"]


def test_cross_field_rules_land_on_their_section() -> None:
    result = parse_form({"train.offload_optimizer": "true"}, RunConfig())
    assert "offload_optimizer needs strategy zero2 or zero3" in result.errors["train"]


def test_checkbox_true_wins_over_its_hidden_false() -> None:
    assert form_items([("a", "false"), ("a", "true"), ("b", "false")]) == {"a": "true", "b": "false"}


def test_credentials_in_urls_are_redacted() -> None:
    assert redact("s3://k:secret@host/b") == "s3://***@host/b"
    assert redact({"x": ["http://u:p@h:9000/"]}) == {"x": ["http://***@h:9000/"]}
    assert display(None) == "" and display([1, 2]) == "[1, 2]" and display("plain") == "plain"


def test_multi_diff_lists_only_disagreements() -> None:
    a, b = RunConfig(), load_config(None, {"train.learning_rate": 1e-3})
    assert multi_diff([a, b, a]) == [("train.learning_rate", [2e-5, 1e-3, 2e-5])]
