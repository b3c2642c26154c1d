"""`s3://bucket/prefix` stores through boto3 and s3transfer (multipart, parallel parts and files)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emtune.config.store import StoreConfig
from emtune.errors import StoreError
from emtune.s3client import make_s3_client
from emtune.store.base import CheckpointStore
from emtune.store.manifest import FileEntry

log = logging.getLogger(__name__)

MIB = 1024 * 1024
SHA256_METADATA = "sha256"
_MISSING = {"NoSuchKey", "404", "NotFound"}
_REFUSED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_UNSUPPORTED = {"NotImplemented", "501"}


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or str(
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


class S3Store(CheckpointStore):
    def __init__(self, bucket: str, prefix: str, cfg: StoreConfig) -> None:
        from s3transfer.manager import TransferConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cfg = cfg
        self.client = make_s3_client(cfg)
        self.transfer_config = TransferConfig(
            multipart_threshold=cfg.multipart_threshold_mb * MIB,
            multipart_chunksize=cfg.part_size_mb * MIB,
            max_request_concurrency=cfg.max_concurrency,
            max_bandwidth=None if cfg.max_bandwidth_mbps is None else int(cfg.max_bandwidth_mbps * 1e6),
        )
        super().__init__(f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}")
        self._check_bucket()

    # --------------------------------------------------------------------------------- helpers
    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn botocore/s3transfer failures into one-line StoreErrors (never echoing credentials)."""
        from botocore import exceptions as bx
        from s3transfer.exceptions import RetriesExceededError

        try:
            yield
        except bx.NoCredentialsError:
            raise StoreError(
                f"no S3 credentials found while {action}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
                "or a web identity (boto3's default chain)"
            ) from None
        except bx.ReadTimeoutError:
            raise StoreError(
                f"S3 endpoint {self.endpoint} accepted the connection but did not answer within "
                f"store.read_timeout_s = {self.cfg.read_timeout_s:g} s while {action} "
                f"({self.cfg.max_attempts} attempts); check store.endpoint_url / AWS_ENDPOINT_URL_S3"
            ) from None
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError):
            raise StoreError(
                f"cannot reach S3 endpoint {self.endpoint} while {action} "
                f"({self.cfg.max_attempts} attempts, store.connect_timeout_s = {self.cfg.connect_timeout_s:g} s); "
                "check store.endpoint_url / AWS_ENDPOINT_URL_S3"
            ) from None
        except RetriesExceededError as exc:
            raise StoreError(
                f"S3 transfer failed while {action} after {self.cfg.max_attempts} attempts: {exc}"
            ) from None
        except bx.ClientError as exc:
            code = _code(exc)
            if code in _REFUSED:
                raise StoreError(
                    f"S3 endpoint {self.endpoint} refused access to bucket {self.bucket!r} while {action} ({code}); "
                    "check the credentials in boto3's default chain and the bucket policy"
                ) from None
            if code == "NoSuchBucket":
                raise StoreError(f"bucket {self.bucket!r} does not exist at {self.endpoint}") from None
            message = exc.response.get("Error", {}).get("Message", "")
            raise StoreError(f"S3 error while {action}: {code} {message}".strip()) from None
        except bx.BotoCoreError as exc:
            raise StoreError(f"S3 client error while {action}: {exc}") from None

    def _check_bucket(self) -> None:
        """Fail at open, not at the first checkpoint an hour into training."""
        from botocore.exceptions import ClientError

        with self._errors(f"opening {self.root_uri}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                    raise StoreError(f"bucket {self.bucket!r} does not exist at {self.endpoint}") from None
                raise

    def exists(self) -> bool:
        """The bucket exists (checked at open); a prefix exists once it holds an object."""
        if not self.prefix:
            return True
        with self._errors(f"listing {self.root_uri}"):
            reply = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(""), MaxKeys=1)
        return bool(reply.get("KeyCount") or reply.get("Contents"))

    # ------------------------------------------------------------------------------ primitives
    def _list(self, prefix: str) -> dict[str, int]:
        base = self._key("")
        found = {}
        with self._errors(f"listing {self.uri_of(prefix)}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix):
                for obj in page.get("Contents", []):
                    found[obj["Key"][len(base) :]] = int(obj["Size"])
        return found

    def _get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._errors(f"reading {self.uri_of(key)}"):
            try:
                # The client bounds the body's reads by the request's deadline (s3client.BodyWithDeadline).
                return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise

    def _put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        from botocore.exceptions import ClientError

        with self._errors(f"writing {self.uri_of(key)}"):
            if not if_absent:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
                return True
            try:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                return True
            except ClientError as exc:
                code = _code(exc)
                if code in _EXISTS:
                    return False
                if code not in _UNSUPPORTED:
                    raise
            # The store has no conditional writes: the best left is check-then-write.
            log.debug("%s does not support If-None-Match; writing %s unconditionally", self.endpoint, key)
            if self._get_bytes(key) is not None:
                return False
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
            return True

    def _recorded_sha256(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        with self._errors(f"checking {self.uri_of(key)}"):
            try:
                metadata = self.client.head_object(Bucket=self.bucket, Key=self._key(key)).get("Metadata", {})
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
        # Some servers change the case of user-metadata names.
        return next((value for name, value in metadata.items() if name.lower() == SHA256_METADATA), None)

    def _upload(self, items: list[tuple[Path, str, FileEntry]]) -> None:
        from s3transfer.manager import TransferManager

        checksum = {} if self.cfg.checksum_compat else {"ChecksumAlgorithm": "SHA256"}
        with (
            self._errors(f"uploading to {self.root_uri}"),
            TransferManager(self.client, self.transfer_config) as manager,
        ):
            futures = [
                manager.upload(
                    str(path),
                    self.bucket,
                    self._key(key),
                    extra_args={"Metadata": {SHA256_METADATA: entry.sha256}, **checksum},
                )
                for path, key, entry in items
            ]
            for future in futures:
                future.result()

    def _download(self, items: list[tuple[str, Path]]) -> None:
        from s3transfer.manager import TransferManager

        with (
            self._errors(f"downloading from {self.root_uri}"),
            TransferManager(self.client, self.transfer_config) as manager,
        ):
            futures = []
            for key, target in items:
                target.parent.mkdir(parents=True, exist_ok=True)
                futures.append(manager.download(self.bucket, self._key(key), str(target)))
            for future in futures:
                future.result()

    def _stored_sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self._errors(f"reading {self.uri_of(key)}"):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            for chunk in body.iter_chunks(chunk_size=MIB):
                digest.update(chunk)
        return digest.hexdigest()

    def _delete(self, keys: list[str]) -> None:
        with self._errors(f"deleting from {self.root_uri}"):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": self._key(key)} for key in keys[start : start + 1000]]
                reply = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if reply.get("Errors"):
                    first = reply["Errors"][0]
                    raise StoreError(f"could not delete s3://{self.bucket}/{first['Key']}: {first.get('Code')}")

    def _discard_partial_uploads(self, prefix: str) -> None:
        from botocore.exceptions import ClientError

        with self._errors(f"aborting unfinished uploads under {self.uri_of(prefix)}"):
            try:
                pages = self.client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.bucket, Prefix=self._key(prefix)
                )
                uploads = [upload for page in pages for upload in page.get("Uploads", [])]
            except ClientError as exc:
                # rclone answers NoSuchUpload when there is none to list.
                if _code(exc) in _UNSUPPORTED or _code(exc) == "NoSuchUpload":
                    return
                raise
            for upload in uploads:
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except ClientError as exc:
                    if _code(exc) != "NoSuchUpload":  # finished or aborted meanwhile: nothing left to drop
                        raise
