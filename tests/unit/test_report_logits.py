"""`emtune report logits`: exact statistics of the logits, the histogram, and the prompts file formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from emtune.cli.app import app
from emtune.config import load_config
from emtune.data.formats import format_prompt
from emtune.errors import DataError
from emtune.model.loading import load_model, load_tokenizer
from emtune.report.logits import model_logits, read_prompts

PROMPTS = ["What is 2 + 3?", "Solve $2x = 8$."]


def test_statistics_are_exact_over_every_logit():
    cfg = load_config(None, {})
    stats, sample = model_logits("builtin:tiny", PROMPTS, cfg)
    tokenizer, model = load_tokenizer("builtin:tiny"), load_model("builtin:tiny")
    with torch.no_grad():
        values = np.concatenate(
            [
                model(
                    **tokenizer(
                        format_prompt(p, cfg.eval.prompt_format, tokenizer),
                        add_special_tokens=False,
                        return_tensors="pt",
                    )
                )
                .logits.flatten()
                .double()
                .numpy()
                for p in PROMPTS
            ]
        )
    centred = values - values.mean()
    assert stats["count"] == values.size
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-6)
    assert stats["std"] == pytest.approx(values.std(), rel=1e-5)
    assert stats["skew"] == pytest.approx((centred**3).mean() / values.std() ** 3, rel=1e-3, abs=1e-6)
    assert 0 < sample.size <= values.size and sample.min() >= values.min() - 1e-4


def test_two_models_compared_through_the_cli(tmp_path: Path):
    shifted = tmp_path / "shifted"
    model = load_model("builtin:tiny")
    with torch.no_grad():
        model.model.norm.weight.mul_(3.0)  # the final norm feeds the (bias-free) head: every logit times 3
    model.save_pretrained(shifted)
    load_tokenizer("builtin:tiny").save_pretrained(shifted)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"problem": p}) + "\n" for p in PROMPTS))

    result = CliRunner().invoke(
        app,
        [
            "report",
            "logits",
            "--model",
            "builtin:tiny",
            "--model",
            str(shifted),
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "logits"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "logits"
    assert sorted(p.name for p in out.iterdir()) == [".emtune-output.json", "logits.json", "logits.md", "logits.png"]
    stats = json.loads((out / "logits.json").read_text())["models"]
    assert list(stats) == ["builtin-tiny", "shifted"]
    assert stats["shifted"]["std"] == pytest.approx(3 * stats["builtin-tiny"]["std"], rel=1e-3)
    assert "| shifted |" in (out / "logits.md").read_text()


def test_prompt_files(tmp_path: Path):
    text = tmp_path / "p.txt"
    text.write_text("first\n\nsecond\n")
    assert read_prompts(text) == ["first", "second"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"question": "q1"}\n{"answer": 3}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2 has none of the fields"):
        read_prompts(jsonl)
    with pytest.raises(DataError, match="does not exist"):
        read_prompts(tmp_path / "missing.txt")


def test_prompts_can_be_preps_output(tmp_path: Path) -> None:
    """`--prompts` takes what `emtune prep` wrote (its folder or its prompts.parquet), not only JSONL/text."""
    from emtune.data import prep

    source = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "prompts" / "problems.jsonl"
    cfg = load_config(None, {"data.source": str(source), "data.mode": "multi_shot"})
    folder = prep.run(cfg, out=tmp_path / "prepared")
    expected = [json.loads(line)["problem"] for line in source.read_text().splitlines() if line.strip()]
    assert read_prompts(folder) == read_prompts(folder / "prompts.parquet")
    assert set(read_prompts(folder)) == set(expected) and read_prompts(folder)
