"""`emtune dashboard`: the web app (runs, curves, compare, retrain, schedules) on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emtune.cli.app import app


@app.command("dashboard")
def dashboard(
    runs_dir: Annotated[
        Path, typer.Option(envvar="EMTUNE_DASHBOARD_RUNS_DIR", help="Folder of local runs (local launcher).")
    ] = Path("runs/tiny"),
    host: Annotated[
        str, typer.Option(envvar="EMTUNE_DASHBOARD_HOST", help="Address to bind; --auth none allows loopback only.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="EMTUNE_DASHBOARD_PORT", help="Port to listen on.")] = 8080,
    auth: Annotated[
        str, typer.Option(envvar="EMTUNE_DASHBOARD_AUTH", help="token (bearer token from a file), proxy or none.")
    ] = "none",
    token_file: Annotated[
        Path | None, typer.Option(envvar="EMTUNE_DASHBOARD_TOKEN_FILE", help="File holding the bearer token.")
    ] = None,
    proxy_user_header: Annotated[
        str,
        typer.Option(envvar="EMTUNE_DASHBOARD_PROXY_USER_HEADER", help="Identity header the trusted proxy sets."),
    ] = "X-Forwarded-User",
    trusted_proxies: Annotated[
        str | None,
        typer.Option(envvar="EMTUNE_DASHBOARD_TRUSTED_PROXIES", help="CIDR[,CIDR] the reverse proxy connects from."),
    ] = None,
    launcher: Annotated[
        str, typer.Option(envvar="EMTUNE_DASHBOARD_LAUNCHER", help="Where runs go: local or kfp.")
    ] = "local",
    kfp_host: Annotated[str | None, typer.Option(envvar="EMTUNE_KFP_HOST", help="KFP API endpoint.")] = None,
    kfp_namespace: Annotated[
        str | None, typer.Option(envvar="EMTUNE_KFP_NAMESPACE", help="Kubeflow namespace (profile).")
    ] = None,
    experiment: Annotated[str, typer.Option(envvar="EMTUNE_KFP_EXPERIMENT", help="KFP experiment of the runs.")] = (
        "emtune"
    ),
    pipeline_name: Annotated[
        str, typer.Option(envvar="EMTUNE_KFP_PIPELINE", help="Uploaded pipeline whose newest version runs start from.")
    ] = "emtune-pipeline",
    store_uri: Annotated[
        str | None,
        typer.Option(envvar="EMTUNE_STORE_URI", help="Store the KFP runs push to (their metrics and checkpoints)."),
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            envvar="EMTUNE_DASHBOARD_ALLOWED_HOSTS",
            help="Host names[,...] this server answers to besides the bind address and loopback (the ingress host).",
        ),
    ] = None,
    retrain_allow: Annotated[
        str | None,
        typer.Option(
            envvar="EMTUNE_DASHBOARD_RETRAIN_ALLOW",
            help="Config keys or patterns[,...] dashboard users may set beyond the default policy (e.g. model.path).",
        ),
    ] = None,
    path_prefix: Annotated[
        str | None,
        typer.Option(
            envvar="EMTUNE_DASHBOARD_PATH_PREFIXES",
            help="Prefixes[,...] model and data paths must lie under (besides builtin:), e.g. /data,s3://bucket/data.",
        ),
    ] = None,
    secure_cookies: Annotated[
        bool, typer.Option(envvar="EMTUNE_DASHBOARD_SECURE_COOKIES", help="Served over TLS: cookies are Secure.")
    ] = False,
    session_hours: Annotated[
        float, typer.Option(envvar="EMTUNE_DASHBOARD_SESSION_HOURS", help="Sign-in session lifetime (auth token).")
    ] = 12.0,
) -> None:
    """Serve the dashboard until interrupted."""
    import uvicorn

    from emtune.dashboard.app import create_app
    from emtune.dashboard.settings import DashboardSettings

    settings = DashboardSettings(
        runs_dir=runs_dir,
        host=host,
        port=port,
        auth=auth,  # type: ignore[arg-type]  # checked by settings.check()
        token_file=token_file,
        proxy_user_header=proxy_user_header,
        trusted_proxies=_items(trusted_proxies),
        launcher=launcher,  # type: ignore[arg-type]
        kfp_host=kfp_host,
        kfp_namespace=kfp_namespace,
        experiment=experiment,
        pipeline_name=pipeline_name,
        store_uri=store_uri,
        allowed_hosts=_items(allowed_hosts),
        retrain_allow=_items(retrain_allow),
        path_prefixes=_items(path_prefix),
        secure_cookies=secure_cookies,
        session_hours=session_hours,
    )
    web_app = create_app(settings)  # checks the settings: a bad value exits 2 before anything binds
    typer.echo(f"emtune dashboard on http://{host}:{port} ({settings.launcher} launcher, auth {settings.auth})")
    uvicorn.run(web_app, host=host, port=port, log_level="info", proxy_headers=False)


def _items(value: str | None) -> list[str]:
    """A comma-separated option as its non-empty items."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]
