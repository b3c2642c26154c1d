"""The dashboard's web app: server-rendered pages (Jinja2 + htmx) and their JSON mirrors over one launcher.

Pages: runs list, run detail, compare, retrain form, schedules; `/healthz`, `/readyz`; `/api/runs...`.
No state of its own beyond an in-memory idempotency table: runs live where the launcher keeps them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from emtune import __version__
from emtune.config import RunConfig, validate_config
from emtune.dashboard import charts
from emtune.dashboard.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Authenticator,
    audit,
    check_csrf,
    checked_form,
    current_user,
)
from emtune.dashboard.forms import (
    ADVANCED,
    FormField,
    FormResult,
    config_diff,
    display,
    form_fields,
    form_values,
    multi_diff,
    parse_form,
    redact,
)
from emtune.dashboard.launcher import UNREADABLE, Launcher, LaunchError, RunData, RunInfo, RunNotFound
from emtune.dashboard.listing import RunQuery, select
from emtune.dashboard.policy import PolicyError, RetrainPolicy
from emtune.dashboard.rundata import promotion_lines
from emtune.dashboard.settings import DashboardSettings
from emtune.errors import EmtuneError
from emtune.runs.local import Provenance

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).parent
# Bodies as the OpenAPI document describes them (the handlers read them themselves, to answer 4xx in one line).
START_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "source_run": {"type": "string", "description": "The run whose config to start from; else the defaults."},
        "config": {"type": "object", "description": "Nested config sections merged over it."},
        "overrides": {"type": "object", "description": "Dotted keys merged last, e.g. {'train.max_steps': 5}."},
        "idempotency_key": {"type": "string", "description": "A repeat with the same key and body starts nothing."},
    },
}
FORM_BODY = {"type": "object", "additionalProperties": {"type": "string"}}


def _body(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


JSON_BODY = _body("application/json", START_BODY)
FORM = _body("application/x-www-form-urlencoded", FORM_BODY)
KEY_PARAMS = ("train.learning_rate", "train.max_steps", "train.rollouts_per_step", "train.temperature")
COMMON_KEYS = (*KEY_PARAMS, "data.text")  # the retrain form's short part
LIST_POLL_S = 3
DETAIL_POLL_S = 2
MAX_JSON_BYTES = 256 * 1024
TAG = re.compile(r"[A-Za-z0-9._-]{1,32}")
MAX_TAGS = 20
# A report comes from a run folder or the store (which pods write): it runs in an opaque origin, with no script.
REPORT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


def make_launcher(settings: DashboardSettings) -> Launcher:
    if settings.launcher == "kfp":
        from emtune.dashboard.kfp_launcher import KfpLauncher

        return KfpLauncher(settings)
    from emtune.dashboard.local_launcher import LocalLauncher

    return LocalLauncher(settings.runs_dir)


class _Starts:
    """Idempotency keys of recent starts -> (the run each started, the request it came with), so a double submit
    starts one run and a key reused for a different request is refused."""

    def __init__(self, size: int = 1000) -> None:
        self._runs: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._size = size
        self.lock = threading.Lock()

    def get(self, key: str, digest: str) -> str | None:
        found = self._runs.get(key)
        if found is None:
            return None
        if found[1] != digest:
            raise IdempotencyConflict(
                f"idempotency key {key[:64]!r} was used for a different request (run {found[0]}); use a new key"
            )
        return found[0]

    def put(self, key: str, run_id: str, digest: str) -> None:
        self._runs[key] = (run_id, digest)
        while len(self._runs) > self._size:
            self._runs.popitem(last=False)


class _Finished:
    """What finished runs produced does not change: read it once."""

    def __init__(self, size: int = 256) -> None:
        self._data: OrderedDict[str, RunData] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # pages are served from a thread pool

    def data(self, launcher: Launcher, run: RunInfo) -> RunData:
        if run.active or run.status == UNREADABLE:
            return launcher.run_data(run)
        with self._lock:
            cached = self._data.get(run.run_id)
        if cached is None:
            cached = launcher.run_data(run)
            with self._lock:
                self._data[run.run_id] = cached
                while len(self._data) > self._size:
                    self._data.popitem(last=False)
        return cached


class IdempotencyConflict(LaunchError):
    """An idempotency key reused with a different request."""


class BadRequest(LaunchError):
    """A request body that cannot be read."""


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def create_app(settings: DashboardSettings, launcher: Launcher | None = None) -> FastAPI:
    settings.check()
    launcher = launcher or make_launcher(settings)
    auth = Authenticator(settings)
    policy = RetrainPolicy(tuple(settings.retrain_allow), tuple(settings.path_prefixes))
    starts, finished = _Starts(), _Finished()
    templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
    templates.env.filters["display"] = display
    templates.env.globals.update(version=__version__, launcher_kind=launcher.kind, auth_mode=settings.auth)

    app = FastAPI(title="emtune dashboard", version=__version__, docs_url=None, redoc_url=None)
    app.middleware("http")(auth.middleware)
    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(request=request, user=current_user(request), csrf=request.state.csrf)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def summary(run: RunInfo) -> dict[str, Any]:
        data = finished.data(launcher, run)
        values = form_values(run.config) if run.config else {}
        best = charts.best_steps(charts.results_table(data.evaluations))
        return {
            "run_id": run.run_id,
            "name": run.name,
            "status": run.status,
            "active": run.active,
            "model": redact(run.config.model.path) if run.config else None,
            "params": {key: values.get(key) for key in KEY_PARAMS},
            "best": {name: {"step": step, "accuracy": acc} for name, (step, acc) in best.items()},
            "trigger": run.provenance.trigger,
            "requested_by": run.provenance.requested_by,
            "parent_run": run.provenance.parent_run,
            "created_at": run.created_at,
            "finished_at": run.finished_at,
            "error": redact(run.error),
            "url": run.url,
            "tags": run.tags,
            "archived": run.archived,
        }

    def get_run(run_id: str) -> RunInfo:
        return launcher.get_run(run_id)

    def start_run(
        user: str, source: RunConfig, cfg: RunConfig, provenance: Provenance, key: str | None, request_digest: str
    ) -> str:
        """Start `cfg` once per idempotency key, after the retrain policy has judged it against `source`."""
        try:
            policy.check(source, cfg)
        except PolicyError as exc:
            audit(user, "start-refused", parent=provenance.parent_run, reason=str(exc))
            raise
        with starts.lock:
            existing = starts.get(key, request_digest) if key else None
            if existing:
                audit(user, "start-repeated", run=existing, idempotency_key=key)
                return existing
            run_id = launcher.start(cfg, provenance)
            if key:
                starts.put(key, run_id, request_digest)
        audit(user, "start", run=run_id, parent=provenance.parent_run, trigger=provenance.trigger)
        return run_id

    # ------------------------------------------------------------------------------------ errors
    @app.exception_handler(EmtuneError)
    async def user_error(request: Request, exc: EmtuneError) -> Response:
        status = 400
        for kind, code in ((RunNotFound, 404), (PolicyError, 403), (IdempotencyConflict, 409)):
            if isinstance(exc, kind):
                status = code
        message = str(redact(str(exc))).splitlines()[0] if str(exc) else type(exc).__name__
        if request.url.path.startswith("/api/") or not hasattr(request.state, "csrf"):
            return JSONResponse({"detail": message}, status_code=status)
        return page(request, "error.html", status_code=status, message=message)

    # ------------------------------------------------------------------------------------ health
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready = launcher.ready()
        body = {"status": "ready" if ready else "not ready", "launcher": launcher.kind}
        return JSONResponse(body, status_code=200 if ready else 503)

    # ------------------------------------------------------------------------------------ login
    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        if settings.auth != "token":
            return RedirectResponse("/", status_code=303)
        return page(request, "login.html", error=None)

    @app.post("/login", openapi_extra=FORM)
    async def login(request: Request) -> Response:
        if settings.auth != "token":
            return RedirectResponse("/", status_code=303)
        form = await request.form()
        check_csrf(request, str(form.get(CSRF_FIELD, "")))
        peer = request.client.host if request.client else "?"
        if not auth.login_allowed(peer):
            audit("-", "login-throttled", peer=peer)
            return page(request, "login.html", status_code=429, error="Too many failed sign-ins; wait a minute.")
        name = auth.token_user(str(form.get("token", "")))
        if name is None:
            auth.login_failed(peer)
            audit("-", "login-failed", peer=peer)
            return page(request, "login.html", status_code=401, error="That is not a token of this dashboard.")
        audit(name, "login", peer=peer)
        response = RedirectResponse("/", status_code=303)
        auth.set_cookie(response, SESSION_COOKIE, auth.new_session(name), max_age=auth.session_s)
        return response

    @app.post("/logout", openapi_extra=FORM)
    async def logout(request: Request) -> Response:
        await checked_form(request)
        auth.end_session(request.cookies.get(SESSION_COOKIE, ""))
        audit(current_user(request), "logout")
        response = RedirectResponse("/login" if settings.auth == "token" else "/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # ------------------------------------------------------------------------------------ runs
    def runs_list(request: Request, template: str) -> Response:
        selected = select(launcher.list_runs(), RunQuery.from_params(request.query_params))
        runs = [summary(run) for run in selected.runs]
        return page(request, template, runs=runs, listing=selected, poll=any(r["active"] for r in runs),
                    poll_s=LIST_POLL_S)  # fmt: skip

    @app.get("/", response_class=HTMLResponse)
    def runs_page(request: Request) -> Response:
        return runs_list(request, "runs.html")

    @app.get("/runs/table", response_class=HTMLResponse)
    def runs_table(request: Request) -> Response:
        return runs_list(request, "_runs_table.html")

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str) -> Response:
        run = get_run(run_id)
        data = finished.data(launcher, run)
        values = form_values(run.config) if run.config else {}
        return page(
            request,
            "run.html",
            run=run,
            info=summary(run),
            params=[(key, redact(value)) for key, value in values.items()],
            charts=charts.run_charts(data.training, data.evaluations),
            checkpoints=data.checkpoints,
            checkpoint_files={c.step: launcher.checkpoint_files(run_id, c.step) for c in data.checkpoints},
            has_report=data.report_html is not None,
            promotion=promotion_lines(data.report_html),
            log_tail=redact(launcher.log_tail(run_id)),
            poll_s=DETAIL_POLL_S,
        )

    @app.get("/runs/{run_id}/live", response_class=HTMLResponse)
    def run_live(request: Request, run_id: str) -> Response:
        run = get_run(run_id)
        if not run.active:  # finished: reload the page once for the final results; polling stops with it
            return HTMLResponse("", headers={"HX-Refresh": "true"})
        data = launcher.run_data(run)
        return page(
            request,
            "_live.html",
            run=run,
            last=data.training[-1] if data.training else None,
            log_tail=redact(launcher.log_tail(run_id)),
            poll_s=DETAIL_POLL_S,
        )

    @app.get("/runs/{run_id}/curves", response_class=HTMLResponse)
    def run_curves(request: Request, run_id: str) -> Response:
        """The curves as they stand: polled while the run trains (metrics.jsonl grows step by step)."""
        run = get_run(run_id)
        data = finished.data(launcher, run)
        response = page(request, "_curves.html", charts=charts.run_charts(data.training, data.evaluations))
        if not run.active:
            response.headers["HX-Refresh"] = "true"  # finished: the page reloads once with its final state
        return response

    @app.get("/runs/{run_id}/checkpoints/{step}/{name}")
    def checkpoint_file(run_id: str, step: int, name: str) -> Response:
        """One file of a checkpoint in a file:// store, as a download."""
        path = launcher.checkpoint_files(run_id, step).get(name)
        if path is None:
            raise HTTPException(404, f"run {run_id!r} has no downloadable file {name!r} at step {step}")
        return FileResponse(path, filename=name, media_type="application/octet-stream")

    @app.get("/runs/{run_id}/report")
    def run_report(run_id: str) -> Response:
        data = finished.data(launcher, get_run(run_id))
        if data.report_html is None:
            raise HTTPException(404, f"run {run_id!r} has no report yet")
        headers = {"Content-Security-Policy": REPORT_CSP, "X-Frame-Options": "SAMEORIGIN"}
        return FileResponse(data.report_html, media_type="text/html", headers=headers)

    @app.post("/runs/{run_id}/stop", openapi_extra=FORM)
    async def stop_run(request: Request, run_id: str) -> Response:
        await checked_form(request)
        await run_in_threadpool(launcher.stop, run_id)  # waits up to its grace period: not on the event loop
        audit(current_user(request), "stop", run=run_id)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.post("/runs/{run_id}/archive", openapi_extra=FORM)
    async def archive_run(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        archived = form.get("archived", "true") == "true"
        await run_in_threadpool(launcher.set_archived, run_id, archived)
        audit(current_user(request), "archive" if archived else "unarchive", run=run_id)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.post("/runs/{run_id}/tags", openapi_extra=FORM)
    async def tag_run(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        tags = list(dict.fromkeys(tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()))
        bad = [tag for tag in tags if not TAG.fullmatch(tag)]
        if bad or len(tags) > MAX_TAGS:
            raise LaunchError(
                f"tags {', '.join(map(repr, bad[:3])) or len(tags)} not allowed: at most {MAX_TAGS} tags of "
                "letters, digits and ._- (up to 32 characters), comma-separated"
            )
        await run_in_threadpool(launcher.set_tags, run_id, tags)
        audit(current_user(request), "tag", run=run_id, tags=",".join(tags))
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.post("/runs/{run_id}/delete", openapi_extra=FORM)
    async def delete_run(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        if form.get("confirm", "").strip() != run_id:
            raise LaunchError(f"to delete run {run_id!r}, type its id in the confirmation field")
        with_store = form.get("with_store") == "true"
        await run_in_threadpool(launcher.delete, run_id, with_store)
        audit(current_user(request), "delete", run=run_id, with_store=with_store)
        return RedirectResponse("/", status_code=303)

    # ------------------------------------------------------------------------------------ retrain
    def retrain_page(
        request: Request, source: RunInfo, values: dict[str, str], errors: dict[str, str], key: str, status: int = 200
    ) -> Response:
        """The short form: the few parameters people change first, every other allowed key under "more"."""
        fields = form_fields()
        more = [field for field in fields if field.key not in COMMON_KEYS and policy.allows(field.key)]
        return page(
            request,
            "retrain.html",
            status_code=status,
            source=source,
            common=sorted(
                (field for field in fields if field.key in COMMON_KEYS and policy.allows(field.key)),
                key=lambda field: COMMON_KEYS.index(field.key),
            ),
            common_keys=COMMON_KEYS,
            sections=_by_section(more),
            more_count=len(more),
            fixed=[field.key for field in fields if not policy.allows(field.key)],
            values=values,
            errors=errors,
            advanced=values.get(ADVANCED, ""),
            idempotency_key=key,
        )

    def source_config(run: RunInfo) -> RunConfig:
        if run.config is None:
            raise LaunchError(f"run {run.run_id!r} has no readable config to retrain from")
        return run.config

    @app.get("/runs/{run_id}/retrain", response_class=HTMLResponse)
    def retrain_form(request: Request, run_id: str) -> Response:
        source = get_run(run_id)
        values = {key: display(value) for key, value in form_values(source_config(source)).items()}
        return retrain_page(request, source, values, {}, uuid.uuid4().hex)

    def judged_form(form: dict[str, str], source: RunInfo) -> tuple[FormResult, list[tuple[str, Any, Any]]]:
        """The form as a config, with the retrain policy's verdict among its errors, and its diff."""
        result = parse_form(form, source_config(source))
        if result.config is not None:
            try:
                policy.check(source_config(source), result.config)
            except PolicyError as exc:
                result = FormResult(None, {ADVANCED: str(exc)})
        diff = config_diff(source_config(source), result.config) if result.config else []
        return result, diff

    @app.post("/runs/{run_id}/retrain/preview", response_class=HTMLResponse, openapi_extra=FORM)
    async def retrain_preview(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        source = await run_in_threadpool(get_run, run_id)
        result, diff = await run_in_threadpool(judged_form, form, source)
        return page(request, "_review.html", errors=result.errors, diff=diff)

    @app.post("/runs/{run_id}/retrain", openapi_extra=FORM)
    async def retrain(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        source = await run_in_threadpool(get_run, run_id)
        result, _ = await run_in_threadpool(judged_form, form, source)
        key = form.get("idempotency_key") or uuid.uuid4().hex
        if result.config is None:
            return retrain_page(request, source, form, result.errors, key, status=422)
        provenance = Provenance("dashboard", current_user(request), source.run_id)
        sent = {name: value for name, value in form.items() if name not in (CSRF_FIELD, "idempotency_key")}
        new_id = await run_in_threadpool(
            start_run, current_user(request), source_config(source), result.config, provenance, key, digest(sent)
        )
        return RedirectResponse(f"/runs/{new_id}", status_code=303)

    # ------------------------------------------------------------------------------------ compare
    @app.get("/compare", response_class=HTMLResponse)
    def compare(request: Request) -> Response:
        ids = list(dict.fromkeys(request.query_params.getlist("run")))
        if len(ids) < 2:
            raise LaunchError("compare needs at least two runs: tick them in the runs list")
        runs = [get_run(run_id) for run_id in ids]
        datas = [finished.data(launcher, run) for run in runs]
        series = [(run.run_id, data.training, data.evaluations) for run, data in zip(runs, datas, strict=True)]
        configs = [run.config for run in runs if run.config is not None]
        diff = multi_diff(configs) if len(configs) == len(runs) else []
        bests = [charts.best_steps(charts.results_table(data.evaluations)) for data in datas]
        benchmarks = sorted({name for best in bests for name in best})
        metrics = [
            (name, [best.get(name) for best in bests]) for name in benchmarks
        ]  # per benchmark: (best step, accuracy) per run, or None
        final_entropy = [data.training[-1].get("entropy") if data.training else None for data in datas]
        eval_differs = [key for key, _ in diff if key.startswith("eval.")]
        return page(request, "compare.html", runs=runs, charts=charts.compare_charts(series), diff=diff,
                    metrics=metrics, final_entropy=final_entropy, eval_differs=eval_differs)  # fmt: skip

    # ------------------------------------------------------------------------------------ schedules
    @app.get("/schedules", response_class=HTMLResponse)
    def schedules_page(request: Request) -> Response:
        runs = [run for run in launcher.list_runs() if run.config is not None]
        return page(request, "schedules.html", schedules=launcher.list_schedules(), runs=runs, error=None)

    @app.post("/schedules", openapi_extra=FORM)
    async def create_schedule(request: Request) -> Response:
        form = await checked_form(request)
        source = await run_in_threadpool(get_run, form.get("source_run", ""))
        name, cron = form.get("name", "").strip(), form.get("cron", "").strip()
        if not name or not cron:
            raise LaunchError("a schedule needs a name and a cron expression, e.g. '0 3 * * *'")
        cfg = source_config(source)
        policy.check_values(cfg)  # a schedule reruns the source's config unchanged: what it holds must pass
        provenance = Provenance("schedule", current_user(request), source.run_id)
        schedule_id = await run_in_threadpool(launcher.create_schedule, name, cron, cfg, provenance)
        audit(current_user(request), "schedule-create", schedule=schedule_id, cron=repr(cron), source=source.run_id)
        return RedirectResponse("/schedules", status_code=303)

    @app.post("/schedules/{schedule_id}/{action}", openapi_extra=FORM)
    async def change_schedule(request: Request, schedule_id: str, action: str) -> Response:
        await checked_form(request)
        if action not in ("pause", "resume", "delete"):
            raise HTTPException(404, f"no schedule action {action!r}; use pause, resume or delete")
        if action == "delete":
            await run_in_threadpool(launcher.delete_schedule, schedule_id)
        else:
            await run_in_threadpool(launcher.set_schedule_enabled, schedule_id, action == "resume")
        audit(current_user(request), f"schedule-{action}", schedule=schedule_id)
        return RedirectResponse("/schedules", status_code=303)

    # ------------------------------------------------------------------------------------ JSON API
    @app.get("/api/runs")
    def api_runs(request: Request) -> list[dict[str, Any]]:
        """Runs, newest first; the list page's query parameters (status, q, sort, order, page, per_page) apply."""
        params = request.query_params
        if not any(name in params for name in ("status", "q", "sort", "order", "page", "per_page")):
            return [summary(run) for run in launcher.list_runs()]
        return [summary(run) for run in select(launcher.list_runs(), RunQuery.from_params(params)).runs]

    @app.get("/api/runs/{run_id}")
    def api_run(run_id: str) -> dict[str, Any]:
        run = get_run(run_id)
        data = finished.data(launcher, run)
        return {
            **summary(run),
            "config": redact(run.config.model_dump(mode="json")) if run.config else None,
            "pipeline_version": run.pipeline_version,
            "training": data.training,
            "evaluations": [
                {key: row.get(key) for key in ("step", "benchmark", "accuracy", "label")} for row in data.evaluations
            ],
            "checkpoints": [{"step": c.step, "uri": redact(c.uri)} for c in data.checkpoints],
        }

    @app.post("/api/runs", status_code=201, openapi_extra=JSON_BODY)
    async def api_start(request: Request) -> Any:
        """Start a run: `{"source_run": id?, "config": {section: {...}}?, "overrides": {"a.b": v}?,
        "idempotency_key": str?}`; who asked and why (trigger "api") are the server's to record."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"detail": "POST /api/runs takes application/json"}, status_code=415)
        body = await json_body(request)
        unknown = sorted(set(body) - {"source_run", "config", "overrides", "idempotency_key"})
        if unknown:
            detail = f"unknown field(s) {', '.join(unknown)}; allowed: source_run, config, overrides, idempotency_key"
            if "trigger" in unknown:
                detail += " (the trigger is recorded by the server)"
            return JSONResponse({"detail": detail}, status_code=422)
        parent, key = body.get("source_run"), body.get("idempotency_key")
        if not isinstance(parent, (str, type(None))) or not isinstance(key, (str, type(None))):
            return JSONResponse({"detail": "source_run and idempotency_key must be strings"}, status_code=422)
        source = source_config(await run_in_threadpool(get_run, parent)) if parent else RunConfig()
        try:
            merged = _merged(source.model_dump(mode="json"), body.get("config") or {}, body.get("overrides") or {})
            cfg = validate_config(merged)
        except EmtuneError as exc:
            return JSONResponse({"detail": str(redact(str(exc))).splitlines()[0]}, status_code=422)
        provenance = Provenance("api", current_user(request), parent)
        sent = {name: value for name, value in body.items() if name != "idempotency_key"}
        run_id = await run_in_threadpool(start_run, current_user(request), source, cfg, provenance, key, digest(sent))
        return {"run_id": run_id, "url": f"/runs/{run_id}"}

    @app.post("/api/runs/{run_id}/stop", openapi_extra=_body("application/json", {"type": "object"}))
    def api_stop(request: Request, run_id: str) -> Any:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"detail": "POST /api/runs/{id}/stop takes application/json"}, status_code=415)
        launcher.stop(run_id)
        audit(current_user(request), "stop", run=run_id)
        return {"run_id": run_id, "status": "stopping"}

    return app


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; BadRequest (400, one line) for an empty, oversized, non-UTF-8, malformed,
    too deeply nested or non-object body."""
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise BadRequest(f"the body is larger than {MAX_JSON_BYTES} bytes")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
    return body


def _by_section(fields: list[FormField]) -> list[tuple[str, list[FormField]]]:
    """Fields grouped by config section, in the config model's order."""
    sections: dict[str, list[FormField]] = {}
    for field in fields:
        sections.setdefault(field.section, []).append(field)
    return list(sections.items())


def _merged(base: dict[str, Any], config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The source config, then a nested `config` mapping, then dotted `overrides` (a JSON API body's parts)."""
    from emtune.config import apply_overrides
    from emtune.dashboard.forms import merge_nested

    if not isinstance(config, dict) or not isinstance(overrides, dict):
        raise LaunchError("'config' must be an object of sections and 'overrides' an object of dotted keys")
    return apply_overrides(merge_nested(base, config), overrides)
