"""One boto3 S3 client built from StoreConfig; credentials come from boto3's default chain only."""

from __future__ import annotations

from typing import Any

from emtune.config.store import StoreConfig


def make_s3_client(cfg: StoreConfig) -> Any:
    import boto3
    from botocore.config import Config

    extra: dict[str, Any] = {}
    if cfg.checksum_compat:
        extra.update(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    config = Config(
        region_name=cfg.region,
        s3={"addressing_style": "path" if cfg.path_style else "auto"},
        retries={"max_attempts": cfg.max_attempts, "mode": "standard"},
        connect_timeout=cfg.connect_timeout_s,
        read_timeout=cfg.read_timeout_s,
        # One pooled connection per parallel part transfer, or s3transfer's threads queue on the pool.
        max_pool_connections=max(10, cfg.max_concurrency),
        **extra,
    )
    # endpoint_url=None lets boto3 read AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL itself.
    return boto3.session.Session().client("s3", endpoint_url=cfg.endpoint_url, config=config)
