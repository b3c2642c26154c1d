"""Benchmark: the dashboard's runs list over a local runs folder of N finished runs (default 1,000).

Writes N run folders (record, requested config, ten steps of trainer metrics) into a temporary folder, serves
the real app over the local launcher in process, and times requests of the list (first page, a filtered page,
a sorted deep page, the JSON API's page) against GET /healthz as the baseline measured in the same run.
Prints median and 90th percentile milliseconds and the ratio to the baseline.

    .venv/bin/python scripts/bench_dashboard_list.py [--runs 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from emtune.config import dump_config, validate_config
from emtune.dashboard.app import create_app
from emtune.dashboard.settings import DashboardSettings

CONFIG = {"run": {"name": "bench"}, "model": {"path": "builtin:tiny"}, "train": {"prompts": "builtin:demo"}}


def write_runs(root: Path, count: int) -> None:
    config = dump_config(validate_config(CONFIG))
    for index in range(count):
        run_id = f"2026{index // 86400:04d}-{index % 86400:06d}-b{index:05d}"[:22]
        run_dir = root / run_id
        (run_dir / "train").mkdir(parents=True)
        status = ("succeeded", "failed", "stopped")[index % 3]
        record = {"status": status, "created_at": f"2026-01-01T00:00:{index:06d}", "config_hash": "h",
                  "trigger": ("manual", "dashboard", "api")[index % 3], "requested_by": f"user{index % 7}"}  # fmt: skip
        (run_dir / "run.json").write_text(json.dumps(record))
        (run_dir / "request.yaml").write_text(config)
        rows = [{"step": step, "entropy": 5.0 - step / 10, "step_s": 1.0} for step in range(1, 11)]
        (run_dir / "train" / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def timed(client: TestClient, path: str, repeat: int) -> list[float]:
    client.get(path)  # warm: what an open list's poll sees
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emtune-bench-list-") as tmp:
        root = Path(tmp)
        write_runs(root, args.runs)
        client = TestClient(create_app(DashboardSettings(runs_dir=root)), base_url="http://127.0.0.1:8080")
        started = time.perf_counter()
        client.get("/")
        cold_ms = (time.perf_counter() - started) * 1000
        baseline = statistics.median(timed(client, "/healthz", args.repeat))
        print(f"{args.runs} runs; cold first page {cold_ms:.0f} ms; baseline GET /healthz {baseline:.1f} ms")
        for label, path in (
            ("first page (50)", "/"),
            ("filtered (status=failed, q=user3)", "/?status=failed&q=user3"),
            ("sorted by status, page 10", "/?sort=status&order=asc&page=10"),
            ("poll of the table", "/runs/table"),
            ("JSON page", "/api/runs?page=2&per_page=50"),
        ):
            times = sorted(timed(client, path, args.repeat))
            median, p90 = statistics.median(times), times[int(0.9 * (len(times) - 1))]
            print(f"  {label:38s} median {median:6.1f} ms  p90 {p90:6.1f} ms  ({median / baseline:5.1f}x baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
