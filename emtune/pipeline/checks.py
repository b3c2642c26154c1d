"""Checks of a run config before a pipeline is compiled, run or submitted: fail early, in one line."""

from __future__ import annotations

from emtune.config import RunConfig
from emtune.errors import ConfigError, DataError


def check_pipeline_config(cfg: RunConfig, *, cluster: bool = False) -> None:
    """Raise the EmtuneError a pipeline run would otherwise hit later, in some pod."""
    from emtune.data.benchmarks import get_benchmark
    from emtune.data.sources import local_source_paths

    for name in cfg.eval.benchmarks:
        get_benchmark(name)  # DataError listing the known benchmarks
    for path in local_source_paths(cfg.data.source) if cfg.data.source else []:
        if not path.exists():
            raise DataError(f"data.source {cfg.data.source!r} does not exist; give a file, hf://... or s3://...")
    if cluster and not (cfg.store.uri or "").startswith("s3://"):
        raise ConfigError(
            f"store.uri = {cfg.store.uri!r}: pods on a cluster share checkpoints through S3; set s3://bucket/prefix"
        )
