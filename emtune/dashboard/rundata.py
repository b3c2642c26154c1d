"""Read what a run produced from where the pipeline writes it: trainer metrics, evaluation results, checkpoints.

Files may be half-written while a run is going: readers skip what they cannot parse yet.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emtune.config.store import StoreConfig
from emtune.dashboard.launcher import Checkpoint
from emtune.errors import EmtuneError
from emtune.report.collect import collect_eval
from emtune.store import open_store

log = logging.getLogger(__name__)


def evaluations_under(folder: Path) -> list[dict[str, Any]]:
    """Every evaluation result (metrics.json per checkpoint and benchmark) under `folder`; none yet is []."""
    if not folder.is_dir():
        return []
    try:
        return collect_eval([folder])
    except EmtuneError:
        return []


def store_checkpoints(uri: str, store_cfg: StoreConfig) -> list[Checkpoint]:
    """The complete steps under a store prefix, with their URIs and the metrics their manifests recorded."""
    try:
        store = open_store(uri, store_cfg)
        return [
            Checkpoint(step=step, uri=store.step_uri(step), metrics=dict(store.read_manifest(step).metrics))
            for step in store.complete_steps()
        ]
    except EmtuneError as exc:
        log.warning("cannot list checkpoints in %s: %s", uri, exc)
        return []


@dataclass
class StoredReport:
    evaluations: list[dict[str, Any]]  # metrics.json per (step, benchmark), as results.json holds them
    html: str | None  # the fetched report page


def store_report(uri: str, store_cfg: StoreConfig, cache_dir: Path) -> StoredReport | None:
    """The report the pipeline put beside a run's steps (`<uri>/report/`), fetched into `cache_dir`; None while the
    run has none (or the store cannot be read: the page shows what there is)."""
    try:
        folder = open_store(uri, store_cfg).pull_report(cache_dir)
        if folder is None:
            return None
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (EmtuneError, OSError, ValueError) as exc:
        log.warning("cannot read the report in %s: %s", uri, exc)
        return None
    html = folder / "report.html"
    return StoredReport(evaluations=list(results.get("results", [])), html=str(html) if html.is_file() else None)


def promotion_lines(report_html: str | None) -> list[str]:
    """The promotion decision and its numbers that the run's report recorded (`promotion` in the results.json
    beside its page); none for a report without one (older runs) or one still being written."""
    from emtune.promote.rule import Decision

    if report_html is None:
        return []
    results = Path(report_html).with_name("results.json")
    if results.is_symlink():  # a run folder is not trusted: never follow a link out of it
        return []
    try:
        recorded = json.loads(results.read_text(encoding="utf-8"))["promotion"]
        return Decision.from_json(recorded).summary()
    except (OSError, KeyError, TypeError, ValueError) as exc:
        log.debug("no promotion decision beside %s: %s", report_html, exc)
        return []
