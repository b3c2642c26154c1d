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
        trusted_proxies=[cidr for cidr in (trusted_proxies or "").split(",") if cidr.strip()],
        launcher=launcher,  # type: ignore[arg-type]
        kfp_host=kfp_host,
        kfp_namespace=kfp_namespace,
        experiment=experiment,
        pipeline_name=pipeline_name,
        store_uri=store_uri,
    )
    web_app = create_app(settings)  # checks the settings: a bad value exits 2 before anything binds
    typer.echo(f"emtune dashboard on http://{host}:{port} ({settings.launcher} launcher, auth {settings.auth})")
    uvicorn.run(web_app, host=host, port=port, log_level="info", proxy_headers=False)
