"""`emtune promote RUN`: apply the promotion rule to a finished local run and register its best step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emtune.cli.app import SetOption, app
from emtune.errors import ConfigError


@app.command("promote")
def promote_run(
    run_dir: Annotated[Path, typer.Argument(help="A local run's folder (runs/<name>/<run id>, holding run.json).")],
    sets: SetOption = None,
    step: Annotated[
        int | None,
        typer.Option(help="Promote this step whatever the rule says: a human override, recorded as such."),
    ] = None,
) -> None:
    """Decide whether the run's best step is a real gain over step 0, register it, move the alias if so."""
    from emtune.config import load_config, parse_override
    from emtune.fsutil import atomic_write_json
    from emtune.promote.run import PROMOTION_FILE, local_registry_uri, promote
    from emtune.runs.local import CONFIG_FILE, RECORD_FILE, current_user, load_record

    if not (run_dir / RECORD_FILE).is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a local run folder (no {RECORD_FILE}); pass runs/<name>/<run id>")
    record = load_record(run_dir)
    if record.status != "succeeded":
        raise ConfigError(f"run {record.run_id} is {record.status}; only a succeeded run can be promoted")
    overrides: dict[str, Any] = dict(parse_override(item) for item in sets or [])
    cfg = load_config(run_dir / CONFIG_FILE, overrides)
    outcome = promote(
        cfg.promote, [run_dir / "pipeline_root"], record.run_id, record.config_hash,
        default_uri=local_registry_uri(run_dir.parent),
        override=None if step is None else (step, current_user() or "unknown user"),
    )  # fmt: skip
    atomic_write_json(run_dir / PROMOTION_FILE, outcome.to_json())
    for line in outcome.summary():
        typer.echo(line)
