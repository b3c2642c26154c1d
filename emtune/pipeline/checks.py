"""Checks of a run config before a pipeline is compiled, run or submitted: fail early, in one line."""

from __future__ import annotations

from emtune.config import RunConfig
from emtune.errors import ConfigError, DataError

REMOTE_SOURCES = ("s3://", "hf://")  # what a pod on a cluster can read; anything else is this machine's


def check_pipeline_config(cfg: RunConfig, *, cluster: bool = False) -> None:
    """Raise the EmtuneError a pipeline run would otherwise hit later, in some pod."""
    from emtune.data.benchmarks import check_source_names, get_benchmark
    from emtune.data.sources import local_source_paths

    for name in cfg.eval.benchmarks:
        get_benchmark(name)  # DataError listing the known benchmarks
    check_source_names(cfg.eval.sources)
    if cluster and not (cfg.store.uri or "").startswith("s3://"):
        raise ConfigError(
            f"store.uri = {cfg.store.uri!r}: pods on a cluster share checkpoints through S3; set s3://bucket/prefix"
        )
    if cluster and cfg.data.source is not None and not cfg.data.source.startswith(REMOTE_SOURCES):
        raise ConfigError(
            f"data.source = {cfg.data.source!r} is a path on this machine, which the prep pod cannot read; "
            "use s3://bucket/key or hf://org/name"
        )
    for path in local_source_paths(cfg.data.source) if cfg.data.source else []:
        if not path.exists():
            raise DataError(f"data.source {cfg.data.source!r} does not exist; give a file, hf://... or s3://...")
