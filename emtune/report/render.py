"""report.md and a self-contained report.html (plots embedded as data URIs) from one results table."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from emtune.report.table import AVERAGE, ResultsTable, build_table

GREEDY = "greedy"  # accuracy of greedy decoding, evaluated beside sampled avg@n (eval.greedy)
# Detail columns: header and how a value is shown (percentages as in the main table: one decimal).
DETAIL_COLUMNS: dict[str, tuple[str, str]] = {
    "items": ("items", "{:.0f}"),
    "samples": ("samples", "{:.0f}"),
    "mean_tokens": ("mean tokens", "{:.1f}"),
    "truncated_fraction": ("truncated %", "{:.1%}"),
    "timeouts": ("timeouts", "{:.0f}"),
    "tokens_per_s": ("tokens/s", "{:.0f}"),
}


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _detail(value: Any, spec: str) -> str:
    if value is None:
        return "–"
    return spec.format(value).rstrip("%")


def scored_counts(results: list[dict[str, Any]]) -> dict[str, str]:
    """'8 of 500' per benchmark that eval.limit cut short (from its metrics' items and benchmark_items)."""
    counts: dict[str, str] = {}
    for r in results:
        total = r.get("benchmark_items")
        if total is not None and r.get("items", total) < total:
            counts[r["benchmark"]] = f"{r['items']} of {total}"
    return counts


def _cell(table: ResultsTable, row: str, label: str) -> str:
    if label not in table.accuracy[row]:
        return "–"
    delta = table.delta(row, label)
    return _percent(table.accuracy[row][label]) + (f" ({100 * delta:+.1f})" if delta is not None else "")


def _grid(table: ResultsTable, results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table: accuracy (delta vs step 0) per checkpoint, then the best one; a
    benchmark scored on part of its items says how many ("math500 (8 of 500)")."""
    header = ["benchmark", *(c.label for c in table.checkpoints), "best"]
    counts = scored_counts(results)
    rows = []
    for row in table.rows:
        best = table.best(row)
        best_text = f"{best.label} ({_percent(table.accuracy[row][best.label])})" if best else "–"
        name = f"{row} ({counts[row]})" if row in counts else row
        rows.append([name, *(_cell(table, row, c.label) for c in table.checkpoints), best_text])
    return header, rows


def _details(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    names = {k for r in results for k in r if k.startswith(("pass@", "avg@"))}
    pass_keys = sorted(names, key=lambda k: (k.split("@")[0], int(k.split("@")[1])))
    pass_keys += [GREEDY] if any(GREEDY in r for r in results) else []
    header = ["checkpoint", "benchmark", *pass_keys, *(title for title, _ in DETAIL_COLUMNS.values())]
    rows = []
    for r in sorted(results, key=lambda r: (r["step"], r["label"], r["benchmark"])):
        scores = [_percent(r[k]) if k in r else "–" for k in pass_keys]
        details = [_detail(r.get(key), spec) for key, (_, spec) in DETAIL_COLUMNS.items()]
        rows.append([r["label"], r["benchmark"], *scores, *details])
    return header, rows


def headline(results: list[dict[str, Any]]) -> list[str]:
    """The report's headline numbers, one line per benchmark and the average: the best checkpoint's accuracy
    against step 0's, e.g. 'demo-arith (2 of 8): best step-2 50.0% vs 25.0% at step-0 (+25.0 points)'."""
    table = build_table(results)
    counts = scored_counts(results)
    lines = []
    for row in table.rows:
        best = table.best(row)
        if best is None:
            continue
        name = f"{row} ({counts[row]})" if row in counts else row
        accuracy = table.accuracy[row]
        if best.label == table.baseline:
            lines.append(f"{name}: {best.label} {_percent(accuracy[best.label])}%, no later step did better")
        elif table.baseline is not None and table.baseline in accuracy:
            gain = accuracy[best.label] - accuracy[table.baseline]
            lines.append(
                f"{name}: best {best.label} {_percent(accuracy[best.label])}% vs {_percent(accuracy[table.baseline])}%"
                f" at {table.baseline} ({100 * gain:+.1f} points)"
            )
        else:
            lines.append(f"{name}: best {best.label} {_percent(accuracy[best.label])}%")
    return lines


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _intro(table: ResultsTable, results: list[dict[str, Any]]) -> str:
    base = (
        f"Deltas in parentheses are percentage points against {table.baseline}."
        if table.baseline
        else ("No step-0 checkpoint was evaluated, so no deltas are shown.")
    )
    text = f"Accuracy (%) per benchmark and checkpoint; '{AVERAGE}' is the unweighted mean over benchmarks. {base}"
    if scored_counts(results):
        text += " eval.limit was set: '(N of M)' is how many of a benchmark's items were scored."
    return text


PROMOTION_INTRO = "The promotion rule (docs/promotion.md) on these results:"


def to_markdown(table: ResultsTable, results: list[dict[str, Any]], plots: list[Path], promotion: list[str]) -> str:
    parts = ["# emtune evaluation report", "", _intro(table, results), "", _md_table(*_grid(table, results)), ""]
    parts += [f"![{plot.stem}]({plot.name})\n" for plot in plots]
    parts += ["## Promotion", "", PROMOTION_INTRO, "", *(f"    {line}" for line in promotion), ""]
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


def to_html(table: ResultsTable, results: list[dict[str, Any]], plots: list[Path], promotion: list[str]) -> str:
    images = "".join(
        f'<img alt="{html.escape(plot.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(plot.read_bytes()).decode("ascii")}">'
        for plot in plots
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>emtune evaluation report</title>"
        f"<style>{_STYLE}</style></head><body><h1>emtune evaluation report</h1>"
        f"<p>{html.escape(_intro(table, results))}</p>{_html_table(*_grid(table, results))}{images}"
        f"<h2>Promotion</h2><p>{html.escape(PROMOTION_INTRO)}</p><pre>{html.escape(chr(10).join(promotion))}</pre>"
        f"<h2>Details</h2>{_html_table(*_details(results))}</body></html>\n"
    )
