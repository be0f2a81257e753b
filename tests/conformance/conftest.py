"""Adapters under test, one fixture per kind, parametrized over every implementation.

Memory and file-based implementations always run; the cloud ones need the
services found by ``tests.services`` (skipped, or failed under
``TICKRAIL_REQUIRE_SERVICES=1``, when absent). Every test gets its own topic
and group names, Postgres schema, Redis key prefix and S3 bucket.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.services import kafka_url, postgres_url, random_name, redis_url, s3_url
from tickrail.adapters import BlobStore, EventBus, KVStore, StateStore
from tickrail.adapters.registry import open_blob_store, open_bus, open_kv, open_store

__all__ = ["kafka_url", "postgres_url", "redis_url", "s3_url"]  # session fixtures


def _with_query(url: str, **params: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


# --- bus ---------------------------------------------------------------------


@pytest.fixture(params=["memory", "kafka"])
def bus_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("kafka_url")
    return url


@pytest.fixture
async def bus(bus_url: str) -> AsyncIterator[EventBus]:
    async with open_bus(bus_url) as bus:
        yield bus  # close() also closes the consumers a test left open


# --- store -------------------------------------------------------------------


@dataclass
class StoreCase:
    """How to open the store under test, and how to run raw SQL beside it."""

    kind: str
    url: str
    raw: Callable[[str], Awaitable[None]] | None  # None: no SQL underneath

    async def open(self) -> StateStore:
        store = open_store(self.url)
        await store.start()
        return store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skip or fail early without Postgres
    kind: str = request.param
    return kind


@pytest.fixture
async def store_case(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StoreCase]:
    if store_kind == "memory":
        yield StoreCase("memory", "memory://", None)
    elif store_kind == "sqlite":
        path = tmp_path / "state.db"

        async def sqlite_raw(sql: str) -> None:
            db = sqlite3.connect(path)
            try:
                db.execute(sql)
                db.commit()
            finally:
                db.close()

        yield StoreCase("sqlite", f"sqlite:///{path}", sqlite_raw)
    else:
        import asyncpg

        base: str = request.getfixturevalue("postgres_url")
        schema = random_name("conf_")

        async def postgres_raw(sql: str) -> None:
            conn = await asyncpg.connect(base, server_settings={"search_path": schema})
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        yield StoreCase("postgres", _with_query(base, schema=schema), postgres_raw)
        # Dropping a schema fires no DELETE/TRUNCATE trigger, so cleanup works.
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
async def store(store_case: StoreCase) -> AsyncIterator[StateStore]:
    store = await store_case.open()
    try:
        await store.setup()
        yield store
    finally:
        await store.close()


# --- blob --------------------------------------------------------------------


@pytest.fixture
def s3_bucket(s3_url: str) -> Iterator[str]:
    """A fresh bucket name; the bucket (created by the adapter) is emptied and removed after."""
    import boto3

    bucket = random_name("conf-")
    yield bucket
    client = boto3.client("s3", endpoint_url=s3_url)
    try:
        for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass
    finally:
        client.close()


def s3_store_url(endpoint: str, bucket: str, prefix: str = "blobs", **options: str) -> str:
    query = {"endpoint_url": endpoint, "region": "us-east-1", "create_bucket": "1", **options}
    return f"s3://{bucket}/{prefix}?{urlencode(query)}"


@pytest.fixture(params=["file", "memory", "s3"])
def blob_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return (tmp_path / "blobs").as_uri()
    if request.param == "memory":
        return "memory://"
    endpoint: str = request.getfixturevalue("s3_url")
    bucket: str = request.getfixturevalue("s3_bucket")
    return s3_store_url(endpoint, bucket)


@pytest.fixture
async def blobs(blob_url: str) -> AsyncIterator[BlobStore]:
    async with open_blob_store(blob_url) as blobs:
        yield blobs


# --- kv ----------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def kv_base_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def kv_namespace(kv_base_url: str) -> AsyncIterator[Callable[[], str]]:
    """Makes URLs of isolated KV namespaces (a fresh Redis key prefix each); cleans up after."""
    if kv_base_url == "memory://":
        yield lambda: "memory://"  # every MemoryKV is its own namespace
        return
    prefixes: list[str] = []

    def make() -> str:
        prefixes.append(random_name("conf:") + ":")
        return _with_query(kv_base_url, prefix=prefixes[-1])

    yield make
    import redis.asyncio as aioredis

    client: Any = aioredis.Redis.from_url(kv_base_url)
    try:
        for prefix in prefixes:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def kv(kv_namespace: Callable[[], str]) -> AsyncIterator[KVStore]:
    async with open_kv(kv_namespace()) as kv:
        yield kv
