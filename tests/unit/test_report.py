"""Reports from saved eval metrics: the table, averages, deltas, best step, plots, markdown and html."""

from __future__ import annotations

import base64
import json
import re

import pytest

from emtune.errors import DataError
from emtune.report.build import run
from emtune.report.table import AVERAGE, build_table

PNG = b"\x89PNG\r\n\x1a\n"
ACCURACY = {  # (label, step) -> benchmark -> accuracy
    ("step-0", 0): {"alpha": 0.50, "beta": 0.20},
    ("step-4", 4): {"alpha": 0.70, "beta": 0.30},
    ("step-8", 8): {"alpha": 0.60, "beta": 0.35},
}


def write_eval_run(root, accuracy=ACCURACY):
    for (label, step), per_benchmark in accuracy.items():
        for benchmark, value in per_benchmark.items():
            folder = root / label / benchmark
            folder.mkdir(parents=True)
            metrics = {
                "label": label,
                "step": step,
                "benchmark": benchmark,
                "accuracy": value,
                "avg@1": value,
                "pass@1": value,
                "items": 10,
                "samples": 10,
                "mean_tokens": 12.5,
                "truncated_fraction": 0.1,
                "timeouts": 1,
                "tokens_per_s": 100.0,
                "model": f"file:///runs/x/{label}",
            }
            (folder / "metrics.json").write_text(json.dumps(metrics))
    return root


def records():
    return [
        {"label": label, "step": step, "benchmark": b, "accuracy": v}
        for (label, step), per in ACCURACY.items()
        for b, v in per.items()
    ]


def test_table_average_deltas_and_best():
    table = build_table(records())
    assert [c.label for c in table.checkpoints] == ["step-0", "step-4", "step-8"]
    assert table.benchmarks == ["alpha", "beta"]
    assert table.accuracy[AVERAGE] == pytest.approx({"step-0": 0.35, "step-4": 0.50, "step-8": 0.475})
    assert table.baseline == "step-0"
    assert table.delta("alpha", "step-4") == pytest.approx(0.20)
    assert table.delta("beta", "step-8") == pytest.approx(0.15)
    assert table.delta("alpha", "step-0") is None
    assert {row: table.best(row).label for row in table.rows} == {
        "alpha": "step-4",
        "beta": "step-8",
        AVERAGE: "step-4",
    }


def test_average_needs_every_benchmark_and_no_step0_means_no_deltas():
    rows = [
        r for r in records() if r["label"] != "step-0" and not (r["label"] == "step-8" and r["benchmark"] == "beta")
    ]
    table = build_table(rows)
    assert table.accuracy[AVERAGE] == pytest.approx({"step-4": 0.5})
    assert table.baseline is None
    assert table.delta("alpha", "step-8") is None


def test_best_step_tie_goes_to_the_earliest():
    rows = [
        {"label": "step-3", "step": 3, "benchmark": "a", "accuracy": 0.5},
        {"label": "step-1", "step": 1, "benchmark": "a", "accuracy": 0.5},
    ]
    assert build_table(rows).best("a").label == "step-1"


def test_report_files_from_saved_metrics(tmp_path):
    eval_dir = write_eval_run(tmp_path / "eval")
    train_metrics = tmp_path / "train" / "metrics.jsonl"
    train_metrics.parent.mkdir()
    train_metrics.write_text(
        "".join(json.dumps({"step": s, "loss": 1.0 / s, "entropy": 2.0 / s}) + "\n" for s in (1, 2, 3))
    )

    out = run([eval_dir], tmp_path / "report", metrics_jsonl=[train_metrics])

    assert sorted(p.name for p in out.iterdir()) == [
        ".emtune-output.json",
        "accuracy_vs_step.png",
        "entropy_vs_step.png",
        "report.html",
        "report.md",
        "results.json",
    ]
    for png in out.glob("*.png"):
        assert png.read_bytes().startswith(PNG)
    results = json.loads((out / "results.json").read_text())
    assert results["best"] == {"alpha": "step-4", "beta": "step-8", AVERAGE: "step-4"}
    assert results["delta_vs_step_0"]["alpha"]["step-4"] == pytest.approx(0.2)
    assert [row["step"] for row in results["training"]["train"]] == [1, 2, 3]
    md = (out / "report.md").read_text()
    assert "| alpha | 50.0 | 70.0 (+20.0) | 60.0 (+10.0) | step-4 (70.0) |" in md
    assert "| average | 35.0 | 50.0 (+15.0) | 47.5 (+12.5) | step-4 (50.0) |" in md
    assert "![entropy_vs_step](entropy_vs_step.png)" in md
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert 'src="http' not in page and "<td>step-4 (70.0)</td>" in page


def test_report_finds_trainer_metrics_in_a_run_folder_and_skips_entropy_plot_without_them(tmp_path):
    run_dir = tmp_path / "run"
    write_eval_run(run_dir / "eval")
    out = run([run_dir], tmp_path / "report")
    assert not (out / "entropy_vs_step.png").exists()
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "entropy": 0.5}) + "\n")
    out = run([run_dir], tmp_path / "report", overwrite=True)
    assert (out / "entropy_vs_step.png").read_bytes().startswith(PNG)


def test_report_without_results_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no eval results"):
        run([tmp_path / "empty"], tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_a_limited_benchmark_says_how_many_items_were_scored_and_formats_are_consistent(tmp_path):
    root = write_eval_run(tmp_path / "eval")
    for path in root.glob("*/alpha/metrics.json"):
        metrics = json.loads(path.read_text())
        path.write_text(json.dumps({**metrics, "items": 8, "benchmark_items": 500, "tokens_per_s": 1234.5678}))
    for path in root.glob("*/beta/metrics.json"):  # scored whole: no count shown
        path.write_text(json.dumps({**json.loads(path.read_text()), "benchmark_items": 10}))
    md = (run([root], tmp_path / "report") / "report.md").read_text()
    assert "| alpha (8 of 500) | 50.0 |" in md and "| beta | 20.0 |" in md
    assert "(N of M)" in md.split("\n## ")[0]  # the headline explains the count
    # details: percentages with one decimal like the table, counts as integers, rates without exponents
    assert "| step-0 | alpha | 50.0 | 50.0 | 8 | 10 | 12.5 | 10.0 | 1 | 1235 |" in md
    assert "e+" not in md


def test_headline_lines_name_the_best_step_and_its_gain():
    from emtune.report.render import headline

    results = [{**r, "items": 8, "benchmark_items": 500} if r["benchmark"] == "alpha" else r for r in records()]
    assert headline(results) == [
        "alpha (8 of 500): best step-4 70.0% vs 50.0% at step-0 (+20.0 points)",
        "beta: best step-8 35.0% vs 20.0% at step-0 (+15.0 points)",
        "average: best step-4 50.0% vs 35.0% at step-0 (+15.0 points)",
    ]
    flat = [{**r, "accuracy": 0.0} for r in records()]
    assert headline(flat)[0] == "alpha: step-0 0.0%, no later step did better"
