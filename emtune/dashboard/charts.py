"""Chart data for the pages: step series aligned on one x axis, as the browser's charting library takes them.

A chart is plain JSON ({id, title, y_label, x, series: [{label, values, points}]}); `points` marks a series
drawn as markers only (the best step of a benchmark).
"""

from __future__ import annotations

from typing import Any

from emtune.report.table import AVERAGE, ResultsTable, build_table


def _chart(chart_id: str, title: str, y_label: str, columns: dict[str, dict[int, float]]) -> dict[str, Any]:
    steps = sorted({step for values in columns.values() for step in values})
    return {
        "id": chart_id,
        "title": title,
        "y_label": y_label,
        "x": steps,
        "series": [
            {"label": label, "values": [values.get(step) for step in steps], "points": label.endswith(" best")}
            for label, values in columns.items()
        ],
    }


def training_series(rows: list[dict[str, Any]], key: str) -> dict[int, float]:
    return {int(row["step"]): float(row[key]) for row in rows if isinstance(row.get(key), (int, float))}


def results_table(evaluations: list[dict[str, Any]]) -> ResultsTable | None:
    return build_table(evaluations) if evaluations else None


def accuracy_columns(table: ResultsTable, prefix: str = "", best: bool = True) -> dict[str, dict[int, float]]:
    """Accuracy (%) per step for each benchmark, and a one-point series at each benchmark's best step."""
    columns: dict[str, dict[int, float]] = {}
    for row in table.benchmarks:
        columns[f"{prefix}{row}"] = {
            c.step: 100 * table.accuracy[row][c.label] for c in table.checkpoints if c.label in table.accuracy[row]
        }
        top = table.best(row)
        if best and top is not None:
            columns[f"{prefix}{row} best"] = {top.step: 100 * table.accuracy[row][top.label]}
    return columns


def best_steps(table: ResultsTable | None) -> dict[str, tuple[int, float]]:
    """Benchmark (and the average) -> (best step, its accuracy in [0, 1])."""
    if table is None:
        return {}
    best = {}
    for row in [*table.benchmarks, AVERAGE]:
        top = table.best(row)
        if top is not None:
            best[row] = (top.step, table.accuracy[row][top.label])
    return best


def run_charts(training: list[dict[str, Any]], evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The detail page's curves: entropy, accuracy per benchmark with the best step, step time and tokens/s."""
    charts = [_chart("entropy", "Entropy vs step", "nats", {"entropy": training_series(training, "entropy")})]
    table = results_table(evaluations)
    if table is not None:
        charts.append(_chart("accuracy", "Accuracy vs step", "accuracy (%)", accuracy_columns(table)))
    charts.append(_chart("step_time", "Step time", "seconds", {"step_s": training_series(training, "step_s")}))
    throughput = {"tokens_per_s": training_series(training, "tokens_per_s")}
    charts.append(_chart("throughput", "Rollout throughput", "tokens/s", throughput))
    return charts


def compare_charts(runs: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The same curves overlaid: one series per run (entropy), per run and benchmark (accuracy)."""
    entropy = {label: training_series(training, "entropy") for label, training, _ in runs}
    accuracy: dict[str, dict[int, float]] = {}
    for label, _, evaluations in runs:
        table = results_table(evaluations)
        if table is not None:
            accuracy.update(accuracy_columns(table, prefix=f"{label}: ", best=False))
    return [
        _chart("entropy", "Entropy vs step", "nats", entropy),
        _chart("accuracy", "Accuracy vs step", "accuracy (%)", accuracy),
    ]
