"""Checkpoint-store settings, shared by `emtune ckpt`, the trainer and S3 data sources."""

from __future__ import annotations

from pydantic import Field

from emtune.config.base import Section


class StoreConfig(Section):
    uri: str | None = Field(
        None, description="Where step folders are pushed: file:///path, a plain path, or s3://bucket/prefix."
    )
    keep_last: int | None = Field(None, ge=1, description="Keep only the newest N complete steps in the store.")
    endpoint_url: str | None = Field(
        None, description="S3 endpoint; unset: boto3's AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL or AWS itself."
    )
    region: str | None = Field(None, description="S3 region; unset: boto3's default chain.")
    path_style: bool = Field(False, description="Path-style addressing (MinIO, SeaweedFS, Ceph).")
    checksum_compat: bool = Field(
        False, description="Send CRC checksum headers only when required (stores that reject botocore's default)."
    )
    multipart_threshold_mb: int = Field(64, ge=5, description="Objects above this size upload in parts.")
    part_size_mb: int = Field(64, ge=5, description="Multipart part size.")
    max_concurrency: int = Field(8, ge=1, le=64, description="Parallel part transfers per object.")
    max_bandwidth_mbps: float | None = Field(
        None, gt=0, description="Cap on transfer bandwidth per store operation, MB/s (shared links); unset: none."
    )
    max_attempts: int = Field(3, ge=1, le=20, description="Attempts per request before giving up.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to wait for a connection.")
    read_timeout_s: float = Field(
        30.0, gt=0, description="Seconds to wait for an answer on an open connection (per attempt)."
    )
    request_deadline_s: float = Field(
        120.0,
        gt=0,
        description="Total seconds one S3 request may take, connection, retries and every read together (a "
        "server trickling bytes never trips read_timeout_s); large files go in parts, each one request.",
    )
    state_every: int = Field(
        0,
        ge=0,
        description="Also push the resume state of every step divisible by N (the final step's always goes); "
        "0: the final step's only. Other steps are pushed as models.",
    )
    upload_queue: int = Field(2, ge=1, description="Steps waiting to upload before training blocks (back-pressure).")
