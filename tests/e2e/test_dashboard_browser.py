"""Click through the dashboard in headless Chromium (Debian's, installed by the test set-up when missing).

The main flow drives the real local launcher: list → detail (the charts' data series) → retrain with an invalid
value (inline error, no run) → retrain with a changed learning rate (a real tiny run starts, is listed, finishes)
→ compare. Schedules run against the launcher test double (the local launcher has no scheduler); token mode
answers 401 without the token. With EMTUNE_DASHBOARD_SCREENSHOTS=docs/screenshots each page is saved as a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dashboard_support import RecordingLauncher, sample_data, screenshot, serve, tiny_config

from emtune.dashboard.app import create_app
from emtune.dashboard.settings import DashboardSettings
from emtune.runs.local import list_runs, load_record

pytest_plugins = ["dashboard_support"]
pytestmark = [pytest.mark.browser]

RUN_TIMEOUT_MS = 900_000
CHART_SERIES = """id => {
    const chart = window.emtuneCharts[id];
    return {labels: chart.series.slice(1).map(s => s.label), x: chart.data[0], values: chart.data.slice(1)};
}"""


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    return context.new_page()


@pytest.mark.slow
def test_list_detail_retrain_compare_with_real_local_runs(browser: Any, finished_local_run: tuple[Path, str]) -> None:
    runs_dir, source_id = finished_local_run
    app = create_app(DashboardSettings(runs_dir=runs_dir))
    with serve(app) as url:
        page = new_page(browser)

        # List: the finished run with its key parameters and best steps.
        page.goto(url)
        row = page.locator(f'tr[data-run-id="{source_id}"]')
        assert row.locator("[data-status]").get_attribute("data-status") == "succeeded"
        assert "demo-arith: step" in row.locator("td.best").inner_text()
        screenshot(page, "runs")

        # Detail: the curves' data as the chart library holds it.
        row.locator(f'a[href="/runs/{source_id}"]').click()
        page.wait_for_function("() => window.emtuneCharts && window.emtuneCharts.entropy")
        entropy = page.evaluate(CHART_SERIES, "entropy")
        assert entropy["labels"] == ["entropy"] and entropy["x"] == [1, 2]
        assert all(value > 0 for value in entropy["values"][0])
        accuracy = page.evaluate(CHART_SERIES, "accuracy")
        assert accuracy["x"] == [0, 1, 2]
        assert set(accuracy["labels"]) == {"demo-arith", "demo-arith best", "demo-algebra", "demo-algebra best"}
        for label, values in zip(accuracy["labels"], accuracy["values"], strict=True):
            marked = [value for value in values if value is not None]
            assert len(marked) == (1 if label.endswith(" best") else 3), label
        assert page.locator("table.checkpoints tr").count() == 3  # header + steps 1 and 2
        # The report shows in its sandboxed frame (its own origin, no script), with its plots.
        page.frame_locator("iframe.report").locator("img").first.wait_for()
        screenshot(page, "run")

        # Retrain with an invalid value: the field's error inline, and no run started.
        page.get_by_role("link", name="Retrain").first.click()
        learning_rate = page.locator('input[name="train.learning_rate"]')
        assert learning_rate.input_value() == "0.001"
        learning_rate.fill("5")
        page.locator("#start-button").click()
        error = page.locator('.field-error[data-field="train.learning_rate"]')
        error.wait_for()
        assert "train.learning_rate = '5'" in error.inner_text() and "≤ 1" in error.inner_text()
        assert len(list_runs(runs_dir)) == 1
        screenshot(page, "retrain-invalid")

        # Retrain with a valid change: the diff shows it, then a real local run starts, is listed and finishes.
        page.locator('input[name="train.learning_rate"]').fill("0.002")
        page.locator('#review tr[data-key="train.learning_rate"]').wait_for()
        assert page.locator("#review tr").count() == 2  # header + the one change
        screenshot(page, "retrain")
        page.locator("#start-button").click()
        page.wait_for_url(lambda address: "/runs/" in address and source_id not in address)
        new_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        page.goto(url)
        page.locator(f'tr[data-run-id="{new_id}"]').wait_for()
        page.goto(f"{url}/runs/{new_id}")
        # The page polls while the run is going and reloads itself once when it ends.
        page.locator('h1 [data-status="succeeded"]').wait_for(timeout=RUN_TIMEOUT_MS)
        record = load_record(runs_dir / new_id)
        assert (record.trigger, record.requested_by, record.parent_run) == ("dashboard", "local", source_id)
        assert len(list_runs(runs_dir)) == 2

        # Compare: tick both runs in the list.
        page.goto(url)
        for run_id in (source_id, new_id):
            page.locator(f'input[name="run"][value="{run_id}"]').check()
        page.locator("#compare-button").click()
        page.wait_for_function("() => window.emtuneCharts && window.emtuneCharts.entropy")
        compared = page.evaluate(CHART_SERIES, "entropy")
        assert sorted(compared["labels"]) == sorted([source_id, new_id])
        diff_row = page.locator('tr[data-key="train.learning_rate"]')
        assert "0.001" in diff_row.inner_text() and "0.002" in diff_row.inner_text()
        screenshot(page, "compare")


def test_schedules_create_and_pause(browser: Any, tmp_path: Path) -> None:
    double = RecordingLauncher(kind="kfp")
    double.add_run("base", tiny_config(**{"store.uri": "s3://bucket/runs"}), data=sample_data())
    with serve(create_app(DashboardSettings(runs_dir=tmp_path), double)) as url:
        page = new_page(browser)
        page.goto(f"{url}/schedules")
        form = page.locator("#schedule-form")
        form.locator('input[name="name"]').fill("nightly")
        form.locator('input[name="cron"]').fill("0 3 * * *")
        form.get_by_role("button", name="Create").click()
        row = page.locator('tr[data-schedule-id="sched-1"]')
        assert "nightly" in row.inner_text() and "enabled" in row.inner_text()
        row.get_by_role("button", name="Pause").click()
        assert "paused" in page.locator('tr[data-schedule-id="sched-1"]').inner_text()
        screenshot(page, "schedules")
    assert [name for name, _ in double.calls] == ["create_schedule", "set_schedule_enabled"]
    assert double.calls[0][1][3].parent_run == "base" and double.calls[1][1] == ("sched-1", False)


def test_token_mode_gives_401_without_the_token(browser: Any, tmp_path: Path) -> None:
    token = "browser-test-token-0123456789"
    (tmp_path / "token").write_text(token)
    double = RecordingLauncher()
    double.add_run("base", tiny_config(), data=sample_data())
    settings = DashboardSettings(runs_dir=tmp_path, auth="token", token_file=tmp_path / "token")
    with serve(create_app(settings, double)) as url:
        page = new_page(browser)
        assert page.goto(url).status == 401
        assert page.goto(f"{url}/api/runs").status == 401
        page.goto(f"{url}/login")
        page.locator('input[name="token"]').fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.locator('tr[data-run-id="base"]').wait_for()
        assert token not in page.content()


@pytest.mark.slow
def test_live_log_and_curves_while_a_real_run_trains(browser: Any, tmp_path: Path) -> None:
    """A real local run: its page shows the task-level log and the entropy curve growing while it trains, and the
    log keeps the reader's scroll position across polls. Saves the README's live screenshots."""
    from emtune.dashboard.local_launcher import LocalLauncher
    from emtune.runs.local import Provenance

    launcher = LocalLauncher(tmp_path)
    run_id = launcher.start(tiny_config(**{"train.max_steps": 40}), Provenance("manual", "tester", None))
    with serve(create_app(DashboardSettings(runs_dir=tmp_path), launcher)) as url:
        page = new_page(browser)
        page.goto(f"{url}/runs/{run_id}")
        page.wait_for_function(
            "() => (window.emtuneCharts?.entropy?.data[0].length ?? 0) >= 3",
            timeout=RUN_TIMEOUT_MS,
        )
        first = page.evaluate(CHART_SERIES, "entropy")["x"]
        log = page.locator("pre.log")
        assert "train" in log.inner_text() and '"executor' not in log.inner_text()  # task lines, not executor JSON
        screenshot(page, "live-run")
        page.wait_for_function(
            f"() => window.emtuneCharts.entropy.data[0].length > {len(first)}", timeout=RUN_TIMEOUT_MS
        )  # the curve grew without a reload
        screenshot(page, "live-curves")
        # Scrolled to the top of the log, the reader stays there across polls.
        page.evaluate("() => { document.querySelector('pre.log').scrollTop = 0; }")
        page.wait_for_timeout(5000)  # two polls
        assert page.evaluate("() => document.querySelector('pre.log').scrollTop") == 0
        launcher.stop(run_id)
    assert launcher.get_run(run_id).status == "stopped"


def test_paginated_list_and_short_retrain_form(browser: Any, tmp_path: Path) -> None:
    from emtune.runs.local import Provenance

    double = RecordingLauncher()
    for index in range(120):
        cfg = tiny_config(**{"train.learning_rate": round(1e-4 * (1 + index % 9), 6), "run.name": f"sweep-{index}"})
        double.add_run(f"run-{index:03d}", cfg, status=("succeeded", "failed", "stopped")[index % 3],
                       data=sample_data(), provenance=Provenance(("manual", "dashboard", "api")[index % 3],
                                                                 f"user{index % 4}", None))  # fmt: skip
    with serve(create_app(DashboardSettings(runs_dir=tmp_path), double)) as url:
        page = new_page(browser)
        page.goto(url)
        assert page.locator("tbody tr").count() == 50
        assert "120 runs · page 1 of 3" in page.locator("nav.pages").inner_text()
        page.get_by_role("link", name="older ›").click()
        page.wait_for_url("**page=2**")
        assert "page 2 of 3" in page.locator("nav.pages").inner_text()
        page.locator('select[name="status"]').select_option("failed")
        page.get_by_role("button", name="Filter").click()
        statuses = page.locator("tbody tr [data-status]").evaluate_all("els => els.map(e => e.dataset.status)")
        assert statuses and set(statuses) == {"failed"}
        page.goto(f"{url}/?per_page=25&sort=created_at")
        screenshot(page, "runs-paged")

        page.goto(f"{url}/runs/run-000/retrain")
        common = page.locator("#common-fields")
        for key in ("train.learning_rate", "train.max_steps", "train.rollouts_per_step", "train.temperature"):
            assert common.locator(f'[name="{key}"]').is_visible()
        assert not page.locator("#more-fields").evaluate("el => el.open")  # the rest is folded away
        common.locator('[name="data.text"]').fill("What is 6 * 7?")
        page.locator('#review tr[data-key="data.text"]').wait_for()
        screenshot(page, "retrain-short")
