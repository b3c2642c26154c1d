"""report.md and a self-contained report.html (plots embedded as data URIs) from one results table."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from emtune.report.table import AVERAGE, ResultsTable

GREEDY = "greedy"  # accuracy of greedy decoding, evaluated beside sampled avg@n (eval.greedy)
DETAIL_COLUMNS = ("items", "samples", "mean_tokens", "truncated_fraction", "timeouts", "tokens_per_s")


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _cell(table: ResultsTable, row: str, label: str) -> str:
    if label not in table.accuracy[row]:
        return "–"
    delta = table.delta(row, label)
    return _percent(table.accuracy[row][label]) + (f" ({100 * delta:+.1f})" if delta is not None else "")


def _grid(table: ResultsTable) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table: accuracy (delta vs step 0) per checkpoint, then the best one."""
    header = ["benchmark", *(c.label for c in table.checkpoints), "best"]
    rows = []
    for row in table.rows:
        best = table.best(row)
        best_text = f"{best.label} ({_percent(table.accuracy[row][best.label])})" if best else "–"
        rows.append([row, *(_cell(table, row, c.label) for c in table.checkpoints), best_text])
    return header, rows


def _details(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    names = {k for r in results for k in r if k.startswith(("pass@", "avg@"))}
    pass_keys = sorted(names, key=lambda k: (k.split("@")[0], int(k.split("@")[1])))
    pass_keys += [GREEDY] if any(GREEDY in r for r in results) else []
    header = ["checkpoint", "benchmark", *pass_keys, *DETAIL_COLUMNS]
    rows = []
    for r in sorted(results, key=lambda r: (r["step"], r["label"], r["benchmark"])):
        scores = [_percent(r[k]) if k in r else "–" for k in pass_keys]
        details = [f"{r[k]:.3g}" if isinstance(r.get(k), float) else str(r.get(k, "–")) for k in DETAIL_COLUMNS]
        rows.append([r["label"], r["benchmark"], *scores, *details])
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _intro(table: ResultsTable) -> str:
    base = f"Deltas in parentheses are percentage points against {table.baseline}." if table.baseline else (
        "No step-0 checkpoint was evaluated, so no deltas are shown.")  # fmt: skip
    return f"Accuracy (%) per benchmark and checkpoint; '{AVERAGE}' is the unweighted mean over benchmarks. {base}"


def to_markdown(table: ResultsTable, results: list[dict[str, Any]], plots: list[Path]) -> str:
    parts = ["# emtune evaluation report", "", _intro(table), "", _md_table(*_grid(table)), ""]
    parts += [f"![{plot.stem}]({plot.name})\n" for plot in plots]
    parts += ["## Details", "", _md_table(*_details(results)), ""]
    return "\n".join(parts)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:1em 0}"
)


def to_html(table: ResultsTable, results: list[dict[str, Any]], plots: list[Path]) -> str:
    images = "".join(
        f'<img alt="{html.escape(plot.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(plot.read_bytes()).decode("ascii")}">'
        for plot in plots
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>emtune evaluation report</title>"
        f"<style>{_STYLE}</style></head><body><h1>emtune evaluation report</h1><p>{html.escape(_intro(table))}</p>"
        f"{_html_table(*_grid(table))}{images}<h2>Details</h2>{_html_table(*_details(results))}</body></html>\n"
    )
