"""One boto3 S3 client built from StoreConfig, each request under a total deadline; credentials come from
boto3's default chain only."""

from __future__ import annotations

from typing import Any

from emtune.config.store import StoreConfig
from emtune.deadlines import call_with_deadline
from emtune.errors import StoreError


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
    client = boto3.session.Session().client("s3", endpoint_url=cfg.endpoint_url, config=config)
    _bound_requests(client, cfg.request_deadline_s)
    return client


def _bound_requests(client: Any, seconds: float) -> None:
    """Every API call of `client` (its retries included; s3transfer's part uploads too) ends within `seconds`.

    botocore funnels each operation through `_make_api_call`; its own timeouts are per socket read.
    """
    make_api_call = client._make_api_call

    def bounded(operation: str, params: dict[str, Any]) -> Any:
        return call_with_deadline(
            lambda: make_api_call(operation, params),
            seconds,
            lambda: StoreError(
                f"S3 request {operation} to {client.meta.endpoint_url} did not finish within store.request_deadline_s"
                f" = {seconds:g} s (connection, retries and reads together); check the endpoint or raise the deadline"
            ),
        )

    client._make_api_call = bounded
