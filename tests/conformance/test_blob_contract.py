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


# --- confinement: every store, every class of URI outside it ------------------------


def _outside_uris(blob_url: str, inside: str) -> list[str]:
    """URIs naming something outside the store under test, each class once."""
    if blob_url.startswith("file:"):
        root = inside.split("/tenant-a/")[0]
        return [
            "file:///etc/passwd",
            f"{root}/../outside-secret",  # '..' out of the root
            f"{root}/tenant-a/../../outside-secret",
            f"{root}-sibling/tenant-a/l/e",  # a directory that only shares the prefix
            f"{root}/link-out/secret",  # a symlink inside the root to outside it
            f"{root}/tenant-a/l/e?x=1",
            "file://otherhost/etc/passwd",
            "s3://bucket/key",
            "relative/path",
        ]
    if blob_url.startswith("memory:"):
        return ["memory://../x", "memory:///etc/passwd", "file:///etc/passwd", "memory://"]
    bucket, key = _split(inside)
    prefix = key.split("tenant-a/")[0]
    return [
        f"s3://other-{bucket}/{key}",  # another bucket
        f"s3://{bucket}/elsewhere/tenant-a/l/e",  # outside the prefix
        f"s3://{bucket}/{prefix}../escape",
        f"s3://{bucket}/{prefix}tenant-a//e",
        f"s3://{bucket}/{key}?versionId=1",
        f"s3://{bucket}/",
        "file:///etc/passwd",
    ]


async def test_uris_outside_the_store_are_refused_without_saying_more(
    blobs: BlobStore, blob_url: str, tmp_path: Any
) -> None:
    inside = await blobs.put("tenant-a/l/e", b"mine", "text/plain")
    if blob_url.startswith("file:"):
        secret = tmp_path / "outside-secret"
        secret.write_bytes(b"top secret bytes")
        root = tmp_path / "blobs"
        (root / "link-out").symlink_to(tmp_path, target_is_directory=True)
        (tmp_path / "secret").write_bytes(b"top secret bytes")
        sibling = tmp_path / "blobs-sibling" / "tenant-a" / "l"
        sibling.mkdir(parents=True)
        (sibling / "e").write_bytes(b"top secret bytes")
    for uri in _outside_uris(blob_url, inside):
        with pytest.raises(AdapterError) as info:
            await blobs.get(uri)
        message = str(info.value)
        assert "refused" in message, uri
        assert not info.value.retriable
        assert "not found" not in message and "bytes" not in message, message
    assert await blobs.get(inside) == b"mine"


async def test_a_read_for_a_lifetime_stays_in_its_tenant(blobs: BlobStore) -> None:
    uri = await blobs.put("tenant-a/l/e", b"a's data", "text/plain")
    assert await blobs.get(uri, tenant="tenant-a") == b"a's data"
    for other in ("tenant-b", "tenant", "", "..", "tenant-a/l"):
        with pytest.raises(AdapterError, match="refused"):
            await blobs.get(uri, tenant=other)
    # Missing or present, another tenant's key reads the same: no existence oracle.
    absent = uri.replace("tenant-a/l/e", "tenant-a/l/absent")
    with pytest.raises(AdapterError) as present_info:
        await blobs.get(uri, tenant="tenant-b")
    with pytest.raises(AdapterError) as absent_info:
        await blobs.get(absent, tenant="tenant-b")
    assert str(present_info.value).replace(uri, "U") == str(absent_info.value).replace(absent, "U")


async def test_a_digest_mismatch_is_refused_before_the_bytes_are_used(blobs: BlobStore) -> None:
    import hashlib

    from tickrail.sdk._payload import read_bytes
    from tickrail.sdk.pb import envelope_pb2 as pb

    data = b"the real bytes"
    uri = await blobs.put("tenant-a/l/e", data, "text/plain")
    good = pb.BlobRef(uri=uri, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    payload = pb.Payload(content_type="text/plain", blob=good)
    assert await read_bytes(payload, blobs, tenant="tenant-a") == data
    payload.blob.sha256 = "0" * 64
    with pytest.raises(BlobIntegrityError) as info:
        await read_bytes(payload, blobs, tenant="tenant-a")
    assert "refused" in str(info.value) and "bytes" not in str(info.value)


async def test_file_store_refuses_a_symlinked_directory_on_write(tmp_path: Any) -> None:
    root = tmp_path / "blobs"
    async with open_blob_store(root.as_uri()) as blobs:
        (tmp_path / "elsewhere").mkdir()
        (root / "tenant-x").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        with pytest.raises(AdapterError, match="refused"):
            await blobs.put("tenant-x/l/e", b"x", "text/plain")
        assert not any((tmp_path / "elsewhere").rglob("*"))
