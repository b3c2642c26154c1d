"""The dashboard's web app: server-rendered pages (Jinja2 + htmx) and their JSON mirrors over one launcher.

Pages: runs list, run detail, compare, retrain form, schedules; `/healthz`, `/readyz`; `/api/runs...`.
No state of its own beyond an in-memory idempotency table: runs live where the launcher keeps them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from emtune import __version__
from emtune.config import RunConfig, validate_config
from emtune.dashboard import charts
from emtune.dashboard.auth import SESSION_COOKIE, Authenticator, audit, checked_form, current_user
from emtune.dashboard.forms import (
    ADVANCED,
    FormField,
    config_diff,
    display,
    form_fields,
    form_values,
    multi_diff,
    parse_form,
    redact,
)
from emtune.dashboard.launcher import Launcher, LaunchError, RunData, RunInfo, RunNotFound
from emtune.dashboard.rundata import promotion_lines
from emtune.dashboard.settings import DashboardSettings
from emtune.errors import EmtuneError
from emtune.runs.local import TRIGGERS, Provenance

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).parent
KEY_PARAMS = ("train.learning_rate", "train.max_steps", "train.rollouts_per_step", "train.temperature")
LIST_POLL_S = 3
DETAIL_POLL_S = 2


def make_launcher(settings: DashboardSettings) -> Launcher:
    if settings.launcher == "kfp":
        from emtune.dashboard.kfp_launcher import KfpLauncher

        return KfpLauncher(settings)
    from emtune.dashboard.local_launcher import LocalLauncher

    return LocalLauncher(settings.runs_dir)


class _Starts:
    """Idempotency keys of recent starts -> the run each started, so a double submit starts one run."""

    def __init__(self, size: int = 1000) -> None:
        self._runs: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self.lock = threading.Lock()

    def get(self, key: str) -> str | None:
        return self._runs.get(key)

    def put(self, key: str, run_id: str) -> None:
        self._runs[key] = run_id
        while len(self._runs) > self._size:
            self._runs.popitem(last=False)


class _Finished:
    """What finished runs produced does not change: read it once."""

    def __init__(self, size: int = 256) -> None:
        self._data: OrderedDict[str, RunData] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # pages are served from a thread pool

    def data(self, launcher: Launcher, run: RunInfo) -> RunData:
        if run.active:
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


def create_app(settings: DashboardSettings, launcher: Launcher | None = None) -> FastAPI:
    settings.check()
    launcher = launcher or make_launcher(settings)
    auth = Authenticator(settings)
    starts, finished = _Starts(), _Finished()
    templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
    templates.env.filters["display"] = display
    templates.env.globals.update(version=__version__, launcher_kind=launcher.kind, auth_mode=settings.auth)

    app = FastAPI(title="emtune dashboard", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
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
        }

    def get_run(run_id: str) -> RunInfo:
        return launcher.get_run(run_id)

    def start_run(request: Request, cfg: RunConfig, provenance: Provenance, key: str | None) -> str:
        with starts.lock:
            existing = starts.get(key) if key else None
            if existing:
                audit(current_user(request), "start-repeated", run=existing, idempotency_key=key)
                return existing
            run_id = launcher.start(cfg, provenance)
            if key:
                starts.put(key, run_id)
        audit(current_user(request), "start", run=run_id, parent=provenance.parent_run, trigger=provenance.trigger)
        return run_id

    # ------------------------------------------------------------------------------------ errors
    @app.exception_handler(EmtuneError)
    async def user_error(request: Request, exc: EmtuneError) -> Response:
        status = 404 if isinstance(exc, RunNotFound) else 400
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return page(request, "error.html", status_code=status, message=str(exc))

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

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        if settings.auth != "token":
            return RedirectResponse("/", status_code=303)
        if not auth.token_matches(str(form.get("token", ""))):
            audit("-", "login-failed", peer=request.client.host if request.client else "?")
            return page(request, "login.html", status_code=401, error="That is not the dashboard's token.")
        audit("token", "login")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, auth.session_cookie(), httponly=True, samesite="strict")
        return response

    # ------------------------------------------------------------------------------------ runs
    @app.get("/", response_class=HTMLResponse)
    def runs_page(request: Request) -> Response:
        runs = [summary(run) for run in launcher.list_runs()]
        return page(request, "runs.html", runs=runs, poll=any(r["active"] for r in runs), poll_s=LIST_POLL_S)

    @app.get("/runs/table", response_class=HTMLResponse)
    def runs_table(request: Request) -> Response:
        runs = [summary(run) for run in launcher.list_runs()]
        return page(request, "_runs_table.html", runs=runs, poll=any(r["active"] for r in runs), poll_s=LIST_POLL_S)

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
            has_report=data.report_html is not None,
            promotion=promotion_lines(data.report_html),
            log_tail=launcher.log_tail(run_id) if run.active else "",
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
            log_tail=launcher.log_tail(run_id),
            poll_s=DETAIL_POLL_S,
        )

    @app.get("/runs/{run_id}/report")
    def run_report(run_id: str) -> Response:
        data = finished.data(launcher, get_run(run_id))
        if data.report_html is None:
            raise HTTPException(404, f"run {run_id!r} has no report yet")
        return FileResponse(data.report_html, media_type="text/html")

    @app.post("/runs/{run_id}/stop")
    async def stop_run(request: Request, run_id: str) -> Response:
        await checked_form(request)
        launcher.stop(run_id)
        audit(current_user(request), "stop", run=run_id)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    # ------------------------------------------------------------------------------------ retrain
    def retrain_page(
        request: Request, source: RunInfo, values: dict[str, str], errors: dict[str, str], key: str, status: int = 200
    ) -> Response:
        return page(
            request,
            "retrain.html",
            status_code=status,
            source=source,
            sections=_by_section(form_fields()),
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

    @app.post("/runs/{run_id}/retrain/preview", response_class=HTMLResponse)
    async def retrain_preview(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        source = get_run(run_id)
        result = parse_form(form, source_config(source))
        diff = config_diff(source_config(source), result.config) if result.config else []
        return page(request, "_review.html", errors=result.errors, diff=diff)

    @app.post("/runs/{run_id}/retrain")
    async def retrain(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        source = get_run(run_id)
        result = parse_form(form, source_config(source))
        key = form.get("idempotency_key") or uuid.uuid4().hex
        if result.config is None:
            return retrain_page(request, source, form, result.errors, key, status=422)
        provenance = Provenance("dashboard", current_user(request), source.run_id)
        new_id = start_run(request, result.config, provenance, key)
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
        return page(request, "compare.html", runs=runs, charts=charts.compare_charts(series), diff=diff)

    # ------------------------------------------------------------------------------------ schedules
    @app.get("/schedules", response_class=HTMLResponse)
    def schedules_page(request: Request) -> Response:
        runs = [run for run in launcher.list_runs() if run.config is not None]
        return page(request, "schedules.html", schedules=launcher.list_schedules(), runs=runs, error=None)

    @app.post("/schedules")
    async def create_schedule(request: Request) -> Response:
        form = await checked_form(request)
        source = get_run(form.get("source_run", ""))
        name, cron = form.get("name", "").strip(), form.get("cron", "").strip()
        if not name or not cron:
            raise LaunchError("a schedule needs a name and a cron expression, e.g. '0 3 * * *'")
        provenance = Provenance("schedule", current_user(request), source.run_id)
        schedule_id = launcher.create_schedule(name, cron, source_config(source), provenance)
        audit(current_user(request), "schedule-create", schedule=schedule_id, cron=repr(cron), source=source.run_id)
        return RedirectResponse("/schedules", status_code=303)

    @app.post("/schedules/{schedule_id}/{action}")
    async def change_schedule(request: Request, schedule_id: str, action: str) -> Response:
        await checked_form(request)
        if action not in ("pause", "resume", "delete"):
            raise HTTPException(404, f"no schedule action {action!r}; use pause, resume or delete")
        if action == "delete":
            launcher.delete_schedule(schedule_id)
        else:
            launcher.set_schedule_enabled(schedule_id, action == "resume")
        audit(current_user(request), f"schedule-{action}", schedule=schedule_id)
        return RedirectResponse("/schedules", status_code=303)

    # ------------------------------------------------------------------------------------ JSON API
    @app.get("/api/runs")
    def api_runs() -> list[dict[str, Any]]:
        return [summary(run) for run in launcher.list_runs()]

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

    @app.post("/api/runs", status_code=201)
    async def api_start(request: Request) -> Any:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"detail": "POST /api/runs takes application/json"}, status_code=415)
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"detail": "the body must be a JSON object"}, status_code=422)
        trigger = str(body.get("trigger", "api"))
        if trigger not in TRIGGERS:
            return JSONResponse({"detail": f"trigger {trigger!r} is not one of {', '.join(TRIGGERS)}"}, 422)
        parent = body.get("source_run")
        base = source_config(get_run(str(parent))).model_dump(mode="json") if parent else {}
        try:
            cfg = validate_config(_merged(base, body.get("config") or {}, body.get("overrides") or {}))
        except EmtuneError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        provenance = Provenance(trigger, current_user(request), str(parent) if parent else None)
        run_id = start_run(request, cfg, provenance, body.get("idempotency_key"))
        return {"run_id": run_id, "url": f"/runs/{run_id}"}

    @app.post("/api/runs/{run_id}/stop")
    def api_stop(request: Request, run_id: str) -> Any:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"detail": "POST /api/runs/{id}/stop takes application/json"}, status_code=415)
        launcher.stop(run_id)
        audit(current_user(request), "stop", run=run_id)
        return {"run_id": run_id, "status": "stopping"}

    return app


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
