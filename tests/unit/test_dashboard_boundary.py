"""The dashboard's trust boundary: Host allow-list, same-origin writes, session-bound CSRF, the retrain policy
for the form, the advanced YAML and the JSON API, security headers, and bodies that cannot be read."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import BASE_URL, RecordingLauncher, csrf_of, sample_data, tiny_config
from fastapi.testclient import TestClient

from emtune.dashboard.app import create_app
from emtune.dashboard.launcher import RunData
from emtune.dashboard.settings import DashboardSettings

pytest_plugins = ["dashboard_support"]

TOKEN = "tok-0123456789abcdef-secret"


def make(tmp_path: Path, client_host: str = "127.0.0.1", **settings: Any) -> tuple[TestClient, RecordingLauncher]:
    double = RecordingLauncher()
    double.add_run("base", tiny_config(), data=sample_data())
    app = create_app(DashboardSettings(runs_dir=tmp_path, **settings), double)
    return TestClient(app, client=(client_host, 50000), base_url=BASE_URL), double


def starts(launcher: RecordingLauncher) -> list[Any]:
    return [args for name, args in launcher.calls if name == "start"]


MODES: dict[str, dict[str, Any]] = {
    "none": {},
    "token": {"host": "0.0.0.0", "auth": "token"},
    "proxy": {"host": "0.0.0.0", "auth": "proxy", "trusted_proxies": ["127.0.0.1/32"]},
}


@pytest.mark.parametrize("mode", MODES)
def test_a_foreign_host_gets_nothing_in_any_mode(tmp_path: Path, mode: str) -> None:
    settings = dict(MODES[mode])
    if mode == "token":
        (tmp_path / "token").write_text(TOKEN)
        settings["token_file"] = tmp_path / "token"
    client, launcher = make(tmp_path, **settings)
    credentials = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-User": "ann"}
    for host in ("rebind.example:8080", "rebind.example", "127.0.0.1.evil.example", "", "localhost:x"):
        headers = {**credentials, "host": host}
        for path in ("/", "/api/runs", "/healthz", "/runs/base", "/static/style.css", "/openapi.json"):
            response = client.get(path, headers=headers)
            assert response.status_code == 421, (host, path, response.status_code)
            assert "base" not in response.text
        started = client.post("/api/runs", json={"source_run": "base"}, headers=headers)
        assert started.status_code == 421
    assert not starts(launcher)
    # The loopback names, with any port, are served.
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9000"):
        assert client.get("/api/runs", headers={**credentials, "host": host}).status_code == 200


def test_allowed_hosts_adds_the_ingress_name(tmp_path: Path) -> None:
    client, _ = make(tmp_path, host="0.0.0.0", auth="proxy", trusted_proxies=["127.0.0.1/32"],
                     allowed_hosts=["emtune.example.com"])  # fmt: skip
    user = {"X-Forwarded-User": "ann"}
    assert client.get("/api/runs", headers={**user, "host": "emtune.example.com"}).status_code == 200
    assert client.get("/api/runs", headers={**user, "host": "other.example.com"}).status_code == 421


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://rebind.example:8080"},
        {"Origin": "http://127.0.0.1:9999"},  # another port on the same machine: another origin
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_writes_from_another_origin_are_refused(tmp_path: Path, headers: dict[str, str]) -> None:
    client, launcher = make(tmp_path)
    launcher.add_run("live", tiny_config(), status="running")
    token = csrf_of(client.get("/").text)
    response = client.post("/runs/live/stop", data={"csrf_token": token}, headers=headers)
    assert response.status_code == 403
    assert client.post("/api/runs", json={"source_run": "base"}, headers=headers).status_code == 403
    assert not launcher.calls
    same = {"Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"}
    ok = client.post("/runs/live/stop", data={"csrf_token": token}, headers=same, follow_redirects=False)
    assert ok.status_code == 303 and launcher.calls == [("stop", ("live",))]


def test_a_csrf_token_from_another_session_is_refused(tmp_path: Path) -> None:
    """Cookie tossing: a token (and even the csrf cookies) planted from elsewhere do not match this session."""
    client, launcher = make(tmp_path)
    launcher.add_run("live", tiny_config(), status="running")
    other = TestClient(client.app, base_url=BASE_URL)  # another browser on the same server
    foreign_token = csrf_of(other.get("/").text)
    client.get("/")
    assert client.post("/runs/live/stop", data={"csrf_token": foreign_token}).status_code == 403
    client.cookies.set("emtune_sid", other.cookies.get("emtune_sid") or "", domain="127.0.0.1")
    client.cookies.set("emtune_csrf", foreign_token, domain="127.0.0.1")  # the old double-submit cookie: meaningless
    assert client.post("/runs/live/stop", data={"csrf_token": "forged"}).status_code == 403
    assert not launcher.calls


def test_pages_carry_security_headers(tmp_path: Path) -> None:
    client, _ = make(tmp_path)
    for path in ("/", "/runs/base", "/api/runs", "/nope-404"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    assert "script-src 'self'" in client.get("/").headers["content-security-policy"]


def test_the_report_is_served_sandboxed(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<script>fetch('/api/runs')</script>")
    client, launcher = make(tmp_path)
    launcher.data["base"] = RunData(report_html=str(report))
    response = client.get("/runs/base/report")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "allow-same-origin" not in csp and "allow-scripts" not in csp
    frame = client.get("/runs/base").text
    assert '<iframe class="report" sandbox=""' in frame


# ---------------------------------------------------------------------------------------------- retrain policy
def form(client: TestClient, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf_of(client.get("/").text), "idempotency_key": fields.pop("key", "k"), **fields}


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        ({"model.trust_remote_code": "true"}, "model.trust_remote_code"),
        ({"data.source": "/home/dev/.aws/credentials"}, "data.source"),
        ({"model.path": "/tmp/model-with-code"}, "model.path"),
        ({"store.uri": "file:///anywhere"}, "store.uri"),
        ({"train.prompts": "/etc/passwd"}, "train.prompts"),
        ({"advanced": "model: {trust_remote_code: true}"}, "model.trust_remote_code"),
        ({"advanced": "pipeline: {train_image: evil:latest}"}, "pipeline.train_image"),
        ({"advanced": "eval: {sources: {demo-arith: /etc/shadow}}"}, "eval.sources"),
    ],
)
def test_the_form_cannot_set_keys_outside_the_policy(tmp_path: Path, fields: dict[str, str], refused: str) -> None:
    client, launcher = make(tmp_path)
    response = client.post("/runs/base/retrain", data=form(client, **fields))
    assert response.status_code == 422
    assert "retrain policy does not let you set" in response.text and refused in response.text
    assert not starts(launcher)


@pytest.mark.parametrize(
    "body",
    [
        {"source_run": "base", "overrides": {"model.trust_remote_code": True}},
        {"source_run": "base", "config": {"data": {"source": "/home/dev/.aws/credentials"}}},
        {"source_run": "base", "config": {"store": {"uri": "file:///anywhere"}}},
        {"source_run": "base", "overrides": {"pipeline.train_image": "evil:latest"}},
        {"config": {"model": {"path": "/tmp/model-with-code", "trust_remote_code": True}}},
    ],
)
def test_the_api_cannot_set_keys_outside_the_policy(tmp_path: Path, body: dict[str, Any]) -> None:
    client, launcher = make(tmp_path)
    response = client.post("/api/runs", json=body)
    assert response.status_code == 403 and "retrain policy" in response.json()["detail"]
    assert "\n" not in response.json()["detail"]
    assert not starts(launcher)


def test_allowed_keys_start_a_run_from_every_input(tmp_path: Path) -> None:
    client, launcher = make(tmp_path)
    fields = {"train.learning_rate": "0.002", "advanced": "eval: {limit: 3}\ndata: {text: 'What is 2+2?'}"}
    ok = client.post("/runs/base/retrain", data=form(client, **fields), follow_redirects=False)
    assert ok.status_code == 303
    api = client.post("/api/runs", json={"source_run": "base", "overrides": {"train.temperature": 0.7}})
    assert api.status_code == 201
    (first, _), (second, _) = starts(launcher)
    assert (first.train.learning_rate, first.eval.limit, first.data.text) == (0.002, 3, "What is 2+2?")
    assert second.train.temperature == 0.7


def test_the_operator_widens_the_policy_and_paths_stay_under_the_prefixes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "p.jsonl").write_text("{}\n")
    (tmp_path / "elsewhere.jsonl").write_text("{}\n")
    (data / "link.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    client, launcher = make(tmp_path, retrain_allow=["data.source"], path_prefixes=[str(data)])
    for outside in (str(tmp_path / "elsewhere.jsonl"), f"{data}/../elsewhere.jsonl", str(data / "link.jsonl")):
        refused = client.post("/api/runs", json={"source_run": "base", "overrides": {"data.source": outside}})
        assert refused.status_code == 403 and "not under an allowed prefix" in refused.json()["detail"], outside
    inside = client.post("/api/runs", json={"source_run": "base", "overrides": {"data.source": str(data / "p.jsonl")}})
    assert inside.status_code == 201
    # Widening one key widens only that key.
    other = client.post("/api/runs", json={"source_run": "base", "overrides": {"model.trust_remote_code": True}})
    assert other.status_code == 403 and len(starts(launcher)) == 1


def test_a_source_run_holding_what_the_policy_refuses_cannot_be_rerun(tmp_path: Path) -> None:
    """A run's config comes from a run folder (untrusted): retraining it unchanged is judged too."""
    client, launcher = make(tmp_path)
    launcher.add_run("planted", tiny_config(**{"model.trust_remote_code": True}), data=sample_data())
    launcher.add_run("reads", tiny_config(**{"data.source": "/home/dev/.aws/credentials"}), data=sample_data())
    for run_id in ("planted", "reads"):
        response = client.post(f"/runs/{run_id}/retrain", data=form(client, **{"train.max_steps": "3"}))
        assert response.status_code == 422, run_id
        assert client.post("/api/runs", json={"source_run": run_id}).status_code == 403
    assert not starts(launcher)


def test_the_preview_shows_the_policy_refusal(tmp_path: Path) -> None:
    client, _ = make(tmp_path)
    text = client.post("/runs/base/retrain/preview", data=form(client, **{"model.trust_remote_code": "true"})).text
    assert "retrain policy does not let you set model.trust_remote_code" in text


# ---------------------------------------------------------------------------------------------- bodies
@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"\xff\xfe\x00", b"[1, 2]", b"[" * 100_000 + b"]" * 100_000, b'{"a": ' + b"1" * 300_000 + b"}"],
)
def test_malformed_json_bodies_get_a_one_line_400(tmp_path: Path, content: bytes) -> None:
    client, launcher = make(tmp_path)
    response = client.post("/api/runs", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail and "\n" not in detail and "Traceback" not in response.text
    assert not starts(launcher)


def test_wrong_shapes_in_a_json_body_are_422(tmp_path: Path) -> None:
    client, _ = make(tmp_path)
    for body in ({"source_run": 5}, {"config": [1]}, {"overrides": "x"}, {"nope": 1}):
        response = client.post("/api/runs", json=body)
        assert response.status_code in (400, 422), body
        assert "\n" not in response.json()["detail"]


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    client, launcher = make(tmp_path)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(6)
    )
    started = time.monotonic()
    response = client.post("/runs/base/retrain/preview", data=form(client, advanced=bomb))
    assert time.monotonic() - started < 1.0  # refused before anything expands
    assert "aliases" in response.text
    too_long = client.post("/runs/base/retrain", data=form(client, advanced="eval: {limit: 3}\n" + "#" * 70_000))
    assert too_long.status_code == 422 and "longer than" in too_long.text
    assert not starts(launcher)


def test_an_idempotency_key_reused_for_another_request_is_refused(tmp_path: Path) -> None:
    client, launcher = make(tmp_path)
    first = client.post("/api/runs", json={"source_run": "base", "idempotency_key": "k1"})
    again = client.post("/api/runs", json={"source_run": "base", "idempotency_key": "k1"})
    other = client.post("/api/runs", json={"source_run": "base", "overrides": {"train.max_steps": 9},
                                           "idempotency_key": "k1"})  # fmt: skip
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert other.status_code == 409 and "different request" in other.json()["detail"]
    assert len(starts(launcher)) == 1


def test_redacted_values_are_kept_unless_retyped_whole(tmp_path: Path) -> None:
    client, launcher = make(tmp_path, retrain_allow=["logging.*"])
    cfg = tiny_config(**{"logging.wandb_entity": "http://KEY:SECRET@wandb"})
    launcher.add_run("secret", cfg, data=sample_data())
    edited = client.post("/runs/secret/retrain", data=form(client, **{"logging.wandb_entity": "http://***@wandb2"}))
    assert edited.status_code == 422 and "retype the whole value" in edited.text
    assert not starts(launcher)


def test_the_live_log_is_redacted_like_the_parameters(tmp_path: Path) -> None:
    client, launcher = make(tmp_path)
    launcher.add_run("live", tiny_config(), status="running", data=sample_data())
    launcher.logs["live"] = "pushing to http://AKIAKEY:s3cr3t@minio:9000/bucket"
    for path in ("/runs/live", "/runs/live/live"):
        text = client.get(path).text
        assert "s3cr3t" not in text and "AKIAKEY" not in text and "http://***@minio:9000/bucket" in text


# ---------------------------------------------------------------------------------------------- sessions
def token_client(tmp_path: Path, tokens: str, **settings: Any) -> tuple[TestClient, RecordingLauncher]:
    (tmp_path / "tokens").write_text(tokens)
    return make(tmp_path, host="0.0.0.0", auth="token", token_file=tmp_path / "tokens", **settings)


def sign_in(client: TestClient, token: str) -> Any:
    login_csrf = csrf_of(client.get("/login").text)
    return client.post("/login", data={"token": token, "csrf_token": login_csrf}, follow_redirects=False)


def test_named_tokens_show_who_acted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = token_client(tmp_path, f"# people\nann: {TOKEN}-ann\nbob: {TOKEN}-bob\n")
    with caplog.at_level(logging.INFO, logger="emtune.dashboard.audit"):
        headers = {"Authorization": f"Bearer {TOKEN}-bob"}
        assert client.post("/api/runs", json={"source_run": "base"}, headers=headers).status_code == 201
        assert sign_in(client, f"{TOKEN}-ann").status_code == 303
        assert "ann" in client.get("/").text
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("user=bob action=start") for line in lines)
    assert any(line.startswith("user=ann action=login") for line in lines)


def test_sessions_expire_end_at_logout_and_are_secure_behind_tls(tmp_path: Path) -> None:
    client, _ = token_client(tmp_path, TOKEN, secure_cookies=True, session_hours=1)
    # TestClient talks plain HTTP, so it would not send a Secure cookie back: cookies go by hand here.
    login = client.get("/login")
    sid = login.cookies["emtune_sid"]
    signed_in = client.post("/login", data={"token": TOKEN, "csrf_token": csrf_of(login.text)},
                            headers={"cookie": f"emtune_sid={sid}"}, follow_redirects=False)  # fmt: skip
    (cookie,) = [c for c in signed_in.headers.get_list("set-cookie") if c.startswith("emtune_session=")]
    assert "Secure" in cookie and "HttpOnly" in cookie and "Max-Age=3600" in cookie and "SameSite=strict" in cookie
    session = signed_in.cookies["emtune_session"]
    assert TOKEN not in session
    headers = {"cookie": f"emtune_session={session}; emtune_sid={sid}"}
    page = client.get("/", headers=headers)
    assert page.status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_of(page.text)}, headers=headers).status_code in (200, 303)
    assert client.get("/api/runs", headers=headers).status_code == 401  # the session is over, cookie or not
    # The expiry is covered by the mac: a session cannot be extended by editing it.
    name, expires, nonce, mac = session.split(".")
    extended = f"{name}.{int(expires) + 86400}.{nonce}.{mac}"
    assert client.get("/api/runs", headers={"cookie": f"emtune_session={extended}"}).status_code == 401


def test_a_session_expires(tmp_path: Path) -> None:
    client, _ = token_client(tmp_path, TOKEN, session_hours=1 / 3600)  # one second
    assert sign_in(client, TOKEN).status_code == 303
    assert client.get("/api/runs").status_code == 200
    time.sleep(2.1)
    assert client.get("/api/runs").status_code == 401


def test_failed_sign_ins_are_rate_limited(tmp_path: Path) -> None:
    client, _ = token_client(tmp_path, TOKEN)
    codes = [sign_in(client, "wrong-token-0000000000").status_code for _ in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    assert sign_in(client, TOKEN).status_code == 429  # even the right token waits


def test_what_users_send_cannot_forge_audit_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = make(tmp_path, host="0.0.0.0", auth="proxy", trusted_proxies=["127.0.0.1/32"])
    with caplog.at_level(logging.INFO, logger="emtune.dashboard.audit"):
        headers = {"X-Forwarded-User": "eve action=delete run=all"}
        assert client.post("/api/runs", json={"source_run": "base"}, headers=headers).status_code == 201
        bad = {"X-Forwarded-User": "eve\x1b[2Kuser=admin"}
        assert client.get("/api/runs", headers=bad).status_code == 401  # not printable: no identity
    (line,) = [r.getMessage() for r in caplog.records if "action=start " in r.getMessage()]
    assert line.startswith('user="eve action=delete run=all" action=start')


def test_a_slow_stop_does_not_block_other_requests(tmp_path: Path) -> None:
    """Stopping waits for the process (up to its grace period) off the event loop: the server keeps answering."""
    import threading

    import httpx
    from dashboard_support import serve

    release = threading.Event()

    class SlowStop(RecordingLauncher):
        def stop(self, run_id: str) -> None:
            release.wait(30)  # a run that ignores SIGTERM
            super().stop(run_id)

    launcher = SlowStop()
    launcher.add_run("live", tiny_config(), status="running")
    with serve(create_app(DashboardSettings(runs_dir=tmp_path), launcher)) as url, httpx.Client(base_url=url) as http:
        page = http.get("/")
        stopping = threading.Thread(
            target=lambda: http.post("/runs/live/stop", data={"csrf_token": csrf_of(page.text)}, timeout=60)
        )
        stopping.start()
        try:
            assert httpx.get(f"{url}/api/runs", timeout=10).status_code == 200  # answered while stop waits
            assert launcher.runs["live"].status == "running"
        finally:
            release.set()
            stopping.join(timeout=60)
    assert launcher.runs["live"].status == "stopped"
