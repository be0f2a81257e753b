"""S3 BlobStore (``s3://bucket/prefix``) on boto3.

boto3 is synchronous, so every call runs in a worker thread; one client is
shared (boto3 clients are thread-safe). Each object carries the SHA-256 of its
bytes in its metadata and ``get`` verifies it, so a corrupted or replaced
object raises BlobIntegrityError instead of returning wrong bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import AdapterError, BlobIntegrityError, ConfigurationError

from .._lifecycle import Lifecycle
from ._confine import check_key, check_tenant, refused

_DIGEST_KEY = "sha256"  # object metadata: x-amz-meta-sha256
_MISSING = {"NoSuchKey", "404", "NotFound"}
_RETRIABLE_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "500",
    "502",
    "503",
    "504",
}
_OPTIONS = {
    "endpoint_url",
    "region",
    "sse",
    "kms_key_id",
    "create_bucket",
    "multipart_threshold",
    "max_pool_connections",
}


def _flag(value: Any) -> bool:
    return str(value).lower() in {"1", "true", "yes", "on"}


def _error(what: str, exc: Exception) -> AdapterError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        retriable = code in _RETRIABLE_CODES or (isinstance(status, int) and status >= 500)
        return AdapterError(
            f"{what}: {code} {error.get('Message', '')}".rstrip(),
            retriable=retriable,
            dependency="s3",
        )
    # BotoCoreError: unreachable endpoint, timeouts, missing credentials.
    retriable = "Credentials" not in type(exc).__name__
    return AdapterError(
        f"{what}: {type(exc).__name__}: {exc}", retriable=retriable, dependency="s3"
    )


class S3BlobStore(Lifecycle):
    """``s3://bucket/optional/prefix?region=us-east-1&sse=AES256`` — blobs in S3.

    Options (URL query or keyword): ``endpoint_url`` (an S3-compatible server),
    ``region``, ``sse`` (``AES256`` or ``aws:kms``) with ``kms_key_id`` for
    encryption at rest, ``create_bucket=1`` (create the bucket on start if
    missing), ``multipart_threshold`` (bytes, default 8 MiB: larger blobs are
    uploaded in parallel parts), ``max_pool_connections`` (default 16).
    Credentials come from the standard AWS chain (environment, profile, role),
    never from the URL.
    """

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigurationError(
                f"S3 URL must look like s3://bucket/optional/prefix, got {redact_url(url)!r}"
            )
        if "@" in parts.netloc:
            raise ConfigurationError(
                "S3 URL must not carry credentials; use the AWS chain (environment, profile, role)"
            )
        settings: dict[str, Any] = dict(parse_qsl(parts.query))
        settings.update(options)
        unknown = set(settings) - _OPTIONS
        if unknown:
            raise ConfigurationError(f"{redact_url(url)!r}: unknown S3 options {sorted(unknown)}")
        self.bucket = parts.netloc
        prefix = unquote(parts.path).strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._endpoint_url: str | None = settings.get("endpoint_url") or None
        self._region: str | None = settings.get("region") or None
        self._create_bucket = _flag(settings.get("create_bucket", "0"))
        try:
            threshold = int(settings.get("multipart_threshold", 8 * 1024 * 1024))
            self._max_pool = int(settings.get("max_pool_connections", 16))
        except ValueError as exc:
            raise ConfigurationError(
                f"{redact_url(url)!r}: numeric option is not a number"
            ) from exc
        self._transfer = TransferConfig(
            multipart_threshold=threshold,
            multipart_chunksize=max(threshold, 5 * 1024 * 1024),  # S3 minimum part size
            max_concurrency=8,
        )
        self._threshold = threshold
        sse = settings.get("sse")
        kms_key_id = settings.get("kms_key_id")
        self._sse: dict[str, str] = {}
        if sse in {"AES256", "aws:kms"}:
            self._sse["ServerSideEncryption"] = sse
        elif sse:
            raise ConfigurationError(
                f"{redact_url(url)!r}: sse must be AES256 or aws:kms, got {sse!r}"
            )
        if kms_key_id:
            if sse != "aws:kms":
                raise ConfigurationError(f"{redact_url(url)!r}: kms_key_id needs sse=aws:kms")
            self._sse["SSEKMSKeyId"] = kms_key_id
        self.where = f"s3://{self.bucket}/{self.prefix}" + (
            f" at {self._endpoint_url}" if self._endpoint_url else ""
        )
        self._client: Any = None

    @property
    def client(self) -> Any:
        self._check_open()
        if self._client is None:
            raise AdapterError("S3BlobStore used before start()")
        return self._client

    async def _start(self) -> None:
        try:
            self._client = await asyncio.to_thread(self._make_client)
            if self._create_bucket:
                await asyncio.to_thread(self._ensure_bucket)
        except (BotoCoreError, ClientError) as exc:
            await self._close()
            raise _error(f"cannot open {self.where}", exc) from exc

    def _make_client(self) -> Any:
        session = boto3.session.Session()
        return session.client(
            "s3",
            endpoint_url=self._endpoint_url,
            region_name=self._region,
            config=Config(
                max_pool_connections=self._max_pool,
                retries={"mode": "standard", "max_attempts": 5},
            ),
        )

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        args: dict[str, Any] = {"Bucket": self.bucket}
        region = self._region or self._client.meta.region_name
        if region and region != "us-east-1":  # us-east-1 refuses an explicit constraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**args)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    def _object_key(self, key: str) -> str:
        path = PurePosixPath(key)
        if not key or path.is_absolute() or ".." in path.parts:
            raise AdapterError(f"invalid blob key {key!r}: must be a relative path without '..'")
        return self.prefix + key

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        client = self.client
        object_key = self._object_key(key)
        extra: dict[str, Any] = {
            "ContentType": content_type,
            "Metadata": {_DIGEST_KEY: hashlib.sha256(data).hexdigest()},
            **self._sse,
        }
        uri = f"s3://{self.bucket}/{object_key}"
        try:
            if len(data) > self._threshold:
                await asyncio.to_thread(
                    client.upload_fileobj,
                    io.BytesIO(data),
                    self.bucket,
                    object_key,
                    ExtraArgs=extra,
                    Config=self._transfer,
                )
            else:
                await asyncio.to_thread(
                    client.put_object, Bucket=self.bucket, Key=object_key, Body=data, **extra
                )
        except (BotoCoreError, ClientError) as exc:
            raise _error(f"cannot write blob {uri}", exc) from exc
        return uri

    async def get(self, uri: str, *, tenant: str | None = None) -> bytes:
        client = self.client
        parts = urlsplit(uri)
        # Only what put() returns: this bucket, under this prefix, a key tickrail makes.
        if parts.scheme != "s3" or parts.netloc != self.bucket or parts.query or parts.fragment:
            raise refused(uri)
        object_key = parts.path.removeprefix("/")
        if not object_key.startswith(self.prefix):
            raise refused(uri)
        check_tenant(check_key(object_key.removeprefix(self.prefix), uri), tenant, uri)
        try:
            data, metadata = await asyncio.to_thread(self._read, client, self.bucket, object_key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise AdapterError(f"blob not found: {uri}", retriable=False) from exc
            raise _error(f"cannot read blob {uri}", exc) from exc
        except BotoCoreError as exc:
            raise _error(f"cannot read blob {uri}", exc) from exc
        expected = metadata.get(_DIGEST_KEY)
        if expected is None:
            raise BlobIntegrityError(f"blob {uri} refused: it was not written by tickrail")
        if hashlib.sha256(data).hexdigest() != expected:
            raise BlobIntegrityError(
                f"blob {uri} refused: its sha256 does not match the one recorded when written"
            )
        return data

    @staticmethod
    def _read(client: Any, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
        response = client.get_object(Bucket=bucket, Key=key)
        with response["Body"] as body:
            data: bytes = body.read()
        return data, dict(response.get("Metadata", {}))
