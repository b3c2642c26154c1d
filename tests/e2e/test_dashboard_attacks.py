"""The dashboard attacked from headless Chromium, only against its own server on 127.0.0.1: DNS rebinding, a
planted report, cookie tossing and clickjacking from another port, a garbage runs folder, and the retrain
policy through the page for each launcher."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import (
    REBIND_HOST,
    RecordingKfpClient,
    RecordingLauncher,
    sample_data,
    serve,
    tiny_config,
)

from emtune.dashboard.app import create_app
from emtune.dashboard.launcher import RunData
from emtune.dashboard.settings import DashboardSettings
from emtune.runs.local import Provenance

pytest_plugins = ["dashboard_support"]
pytestmark = [pytest.mark.browser]


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(30_000)
    return context.new_page()


@contextlib.contextmanager
def attacker_site(pages: dict[str, str]) -> Iterator[str]:
    """Another origin on this machine (127.0.0.1, another port) serving the attacker's pages."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            body = pages.get(self.path.split("?")[0], "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def starts(launcher: RecordingLauncher) -> list[Any]:
    return [args for name, args in launcher.calls if name in ("start", "stop")]


def double() -> RecordingLauncher:
    launcher = RecordingLauncher()
    launcher.add_run("base", tiny_config(), data=sample_data())
    launcher.add_run("live", tiny_config(), status="running", data=sample_data())
    return launcher


def test_dns_rebinding_is_refused(rebinding_browser: Any, tmp_path: Path) -> None:
    """A foreign name that resolves to 127.0.0.1: its pages get the dashboard's refusal, never its data."""
    launcher = double()
    with serve(create_app(DashboardSettings(runs_dir=tmp_path), launcher)) as url:
        port = url.rsplit(":", 1)[1]
        page = new_page(rebinding_browser)
        response = page.goto(f"http://{REBIND_HOST}:{port}/")
        assert response.status == 421 and "base" not in page.content()
        # Script on that origin (what a rebinding page runs) reads nothing and starts nothing.
        result = page.evaluate(
            """async () => {
                const list = await fetch('/api/runs');
                const start = await fetch('/api/runs', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                        body: JSON.stringify({source_run: 'base'})});
                return [list.status, await list.text(), start.status];
            }"""
        )
        assert result[0] == 421 and "base" not in result[1] and result[2] == 421
        # The same server by its loopback name serves normally (the test is not refusing everything).
        assert page.goto(f"{url}/").status == 200
    assert not starts(launcher)


def test_a_planted_reports_script_cannot_reach_the_api(browser: Any, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(
        "<p>report</p><script>"
        "fetch('/api/runs').then(r => r.text()).then(t => fetch('/api/runs', {method: 'POST',"
        " headers: {'Content-Type': 'application/json'}, body: JSON.stringify({source_run: 'base', note: t})}));"
        "try { parent.document.title = 'pwned'; } catch (e) {}"
        "</script>"
    )
    launcher = double()
    launcher.data["base"] = RunData(report_html=str(report))
    with serve(create_app(DashboardSettings(runs_dir=tmp_path), launcher)) as url:
        page = new_page(browser)
        api_calls: list[str] = []
        page.on("request", lambda request: api_calls.append(request.url) if "/api/" in request.url else None)
        page.goto(f"{url}/runs/base")
        frame = page.frame_locator("iframe.report")
        frame.locator("p").wait_for()  # the report is shown...
        page.goto(f"{url}/runs/base/report")  # ...and opened on its own too
        page.locator("p").wait_for()
        page.wait_for_timeout(1000)  # time for a script that ran to make its requests
        assert api_calls == []  # its script never ran: no request to the API
        assert page.evaluate("document.title") != "pwned"
    assert not starts(launcher)


def test_cookie_tossing_from_another_port_starts_nothing(browser: Any, tmp_path: Path) -> None:
    """Another 127.0.0.1 port shares the dashboard's cookies: it plants a CSRF token and session id of its
    own, then posts a form with them. The Origin check and the session-bound token both refuse it."""
    launcher = double()
    with serve(create_app(DashboardSettings(runs_dir=tmp_path), launcher)) as url:
        page = new_page(browser)
        page.goto(url)  # the victim has a session
        attack = f"""<script>
            document.cookie = 'emtune_sid=tossedtossedtossedtossed0; path=/';
            document.cookie = 'emtune_csrf=tossed; path=/';
        </script>
        <form id="f" method="post" action="{url}/runs/live/stop"><input name="csrf_token" value="tossed"></form>
        <script>document.getElementById('f').submit();</script>"""
        with attacker_site({"/": attack}) as evil:
            page.goto(evil)
            page.wait_for_url(f"{url}/runs/live/stop")
            assert "same-site" in page.content() and "may not change anything" in page.content()
    assert not starts(launcher)


def test_the_retrain_page_cannot_be_framed(browser: Any, tmp_path: Path) -> None:
    launcher = double()
    with serve(create_app(DashboardSettings(runs_dir=tmp_path), launcher)) as url:
        page = new_page(browser)
        page.goto(url)
        framing = f'<iframe id="victim" src="{url}/runs/base/retrain" width="800" height="600"></iframe>'
        with attacker_site({"/": framing}) as evil:
            page.goto(evil)
            page.wait_for_timeout(1500)
            frame = page.frame_locator("#victim")
            assert frame.locator("#retrain-form").count() == 0  # blocked: frame-ancestors 'none'
            assert frame.locator("#start-button").count() == 0
    assert not starts(launcher)


def test_a_garbage_runs_folder_still_serves_the_list(browser: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name, content in (("20260101-000001-half00", '{"sta'), ("20260101-000002-list00", "[1]")):
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text(content)
    with serve(create_app(DashboardSettings(runs_dir=runs))) as url:
        page = new_page(browser)
        assert page.goto(url).status == 200
        for name in ("20260101-000001-half00", "20260101-000002-list00"):
            row = page.locator(f'tr[data-run-id="{name}"]')
            assert row.locator("[data-status]").get_attribute("data-status") == "unreadable"
        assert page.goto(f"{url}/schedules").status == 200


@pytest.mark.parametrize("kind", ["local", "kfp"])
def test_the_retrain_policy_holds_in_the_page(browser: Any, tmp_path: Path, kind: str) -> None:
    """The advanced field of the real page cannot turn on remote code, for either launcher."""
    from emtune.dashboard.kfp_launcher import KfpLauncher
    from emtune.dashboard.local_launcher import LocalLauncher

    runs = tmp_path / "runs"
    kfp_client = RecordingKfpClient()
    if kind == "local":
        settings = DashboardSettings(runs_dir=runs)
        launcher: Any = LocalLauncher(runs)
        run_dir = runs / "20260101-000000-base00"
        run_dir.mkdir(parents=True)
        run_dir.joinpath("run.json").write_text(json.dumps({"status": "succeeded", "created_at": "2026-01-01"}))
        run_dir.joinpath("request.yaml").write_text(json.dumps(tiny_config().model_dump(mode="json")))
        source = run_dir.name
    else:
        settings = DashboardSettings(launcher="kfp", kfp_host="http://kfp.example:8888", store_uri="s3://dash/runs")
        launcher = KfpLauncher(settings, client_factory=lambda: kfp_client)
        source = launcher.start(tiny_config(**{"store.uri": "s3://dash/runs"}), Provenance("manual", "ann", None))
    with serve(create_app(settings, launcher)) as url:
        page = new_page(browser)
        page.goto(f"{url}/runs/{source}/retrain")
        page.locator("#more-fields > summary").click()
        page.locator("summary", has_text="advanced").click()
        page.locator('textarea[name="advanced"]').fill("model: {trust_remote_code: true}")
        page.locator("#start-button").click()
        error = page.locator(".error, .field-error").filter(has_text="model.trust_remote_code")
        error.first.wait_for()
        assert "retrain policy" in error.first.inner_text()
    if kind == "local":
        assert sorted(path.name for path in runs.iterdir()) == [source]  # no run folder was made
    else:
        assert len([c for c in kfp_client.calls if c[0] == "run_pipeline"]) == 1  # only the source run
