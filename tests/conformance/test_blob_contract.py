"""BlobStore contract, plus the S3 store's integrity, encryption and multipart paths."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tickrail.adapters import BlobStore
from tickrail.adapters.registry import open_blob_store
from tickrail.sdk.errors import AdapterClosedError, AdapterError, BlobIntegrityError

from .conftest import s3_store_url


async def test_round_trip_is_byte_identical(blobs: BlobStore) -> None:
    data = os.urandom(3 * 1024 * 1024)
    uri = await blobs.put("tenant-a/lifetime-1/exec-1", data, "application/octet-stream")
    small = await blobs.put("tenant-a/lifetime-1/exec-2", b"", "text/plain")
    assert await blobs.get(uri) == data
    assert await blobs.get(small) == b""


async def test_missing_blob_is_a_permanent_adapter_error(blobs: BlobStore) -> None:
    uri = await blobs.put("tenant-a/lifetime-1/present", b"x", "text/plain")
    missing = uri.replace("/present", "/absent")
    with pytest.raises(AdapterError) as info:
        await blobs.get(missing)
    assert not info.value.retriable
    assert not isinstance(info.value, BlobIntegrityError)


async def test_use_after_close_is_refused(blobs: BlobStore) -> None:
    uri = await blobs.put("t/l/e", b"x", "text/plain")
    await blobs.close()
    await blobs.close()
    with pytest.raises(AdapterClosedError):
        await blobs.get(uri)
    with pytest.raises(AdapterClosedError):
        await blobs.put("t/l/e2", b"x", "text/plain")


# --- S3 only -------------------------------------------------------------------


@pytest.fixture
def s3_client(s3_url: str) -> Iterator[Any]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_url)
    yield client
    client.close()


@pytest.fixture
async def s3_blobs(s3_url: str, s3_bucket: str) -> AsyncIterator[BlobStore]:
    async with open_blob_store(s3_store_url(s3_url, s3_bucket, prefix="p/q")) as blobs:
        yield blobs


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


async def test_s3_uri_names_bucket_and_prefixed_key(s3_blobs: BlobStore, s3_bucket: str) -> None:
    uri = await s3_blobs.put("tenant/lifetime/exec", b"x", "text/plain")
    assert uri == f"s3://{s3_bucket}/p/q/tenant/lifetime/exec"


async def test_s3_tampered_object_raises_integrity_error(
    s3_blobs: BlobStore, s3_client: Any
) -> None:
    uri = await s3_blobs.put("t/l/e", b"original bytes", "text/plain")
    bucket, key = _split(uri)
    metadata = s3_client.head_object(Bucket=bucket, Key=key)["Metadata"]
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"tampered bytes", Metadata=metadata)
    with pytest.raises(BlobIntegrityError, match="sha256"):
        await s3_blobs.get(uri)
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"no digest at all")
    with pytest.raises(BlobIntegrityError):
        await s3_blobs.get(uri)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"sse": "AES256"}, {"ServerSideEncryption": "AES256"}),
        (
            {"sse": "aws:kms", "kms_key_id": "alias/tickrail"},
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/tickrail"},
        ),
    ],
)
async def test_s3_server_side_encryption_is_applied(
    s3_url: str, s3_bucket: str, s3_client: Any, options: dict[str, str], expected: dict[str, str]
) -> None:
    async with open_blob_store(s3_store_url(s3_url, s3_bucket, **options)) as blobs:
        small = await blobs.put("t/l/small", b"x", "text/plain")
        big = await blobs.put("t/l/big", os.urandom(9 * 1024 * 1024), "application/octet-stream")
    for uri in (small, big):
        bucket, key = _split(uri)
        head = s3_client.head_object(Bucket=bucket, Key=key)
        assert {k: head.get(k) for k in expected} == expected


async def test_s3_big_blob_goes_multipart(s3_url: str, s3_bucket: str, s3_client: Any) -> None:
    threshold = 5 * 1024 * 1024
    data = os.urandom(12 * 1024 * 1024)
    url = s3_store_url(s3_url, s3_bucket, multipart_threshold=str(threshold))
    async with open_blob_store(url) as blobs:
        uri = await blobs.put("t/l/huge", data, "application/octet-stream")
        assert await blobs.get(uri) == data
    bucket, key = _split(uri)
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head["ContentType"] == "application/octet-stream"


async def test_s3_rejects_keys_that_escape_the_prefix(s3_blobs: BlobStore) -> None:
    for key in ("../other/e", "/abs/e", ""):
        with pytest.raises(AdapterError, match="invalid blob key"):
            await s3_blobs.put(key, b"x", "text/plain")
