"""`emtune report`: eval results (+ trainer metrics) → report.md, report.html, results.json and PNG plots."""

from __future__ import annotations

import logging
from pathlib import Path

from emtune.config.promote import PromoteConfig
from emtune.fsutil import atomic_dir, atomic_write_json, atomic_write_text, check_output
from emtune.report.collect import collect_eval, collect_training, input_files
from emtune.report.plots import accuracy_vs_step, entropy_vs_step
from emtune.report.promotion import promotion_decision
from emtune.report.render import to_html, to_markdown
from emtune.report.table import build_table

log = logging.getLogger(__name__)


def run(
    inputs: list[Path],
    out: Path,
    metrics_jsonl: list[Path] | None = None,
    *,
    overwrite: bool = False,
    promotion: PromoteConfig | None = None,
) -> Path:
    """Build the report for every eval result under `inputs` into the folder `out`.

    Trainer metrics (`metrics.jsonl`) found under `inputs` or named in `metrics_jsonl` give the entropy plot.
    An existing non-empty `out` is replaced only with `overwrite` and only if emtune wrote it; an `out` that is
    or holds a file the report reads is refused (the default `<eval folder>/report` holds none). The promotion
    rule (`promotion`, default settings when None) is applied to the results and its verdict shown.
    """
    inputs = [Path(p) for p in inputs]
    read = input_files(inputs, metrics_jsonl)
    check_output(out, read, overwrite=overwrite)
    results = collect_eval(inputs)
    training = collect_training(inputs, metrics_jsonl)
    table = build_table(results)
    decision = promotion_decision(inputs, promotion)
    with atomic_dir(Path(out), "report", inputs=read, overwrite=overwrite) as tmp:
        plots = [accuracy_vs_step(table, tmp / "accuracy_vs_step.png")]
        if any("entropy" in row for rows in training.values() for row in rows):
            plots.append(entropy_vs_step(training, tmp / "entropy_vs_step.png"))
        atomic_write_json(
            tmp / "results.json",
            {**table.to_json(), "results": results, "training": training, "promotion": decision.to_json()},
        )
        atomic_write_text(tmp / "report.md", to_markdown(table, results, plots, decision.summary()))
        atomic_write_text(tmp / "report.html", to_html(table, results, plots, decision.summary()))
    log.info("report for %d checkpoints x %d benchmarks in %s", len(table.checkpoints), len(table.benchmarks), out)
    return Path(out)
