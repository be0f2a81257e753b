"""Choose an adapter implementation by URL scheme.

A driver module is imported only when its scheme is used, so the embedded
default (``memory://``, ``sqlite:///``, ``file://``) needs none of the cloud
libraries. Each entry names ``module:Class``; the class is constructed as
``Class(url, **options)`` and connected by ``start()`` or ``async with``.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tickrail.sdk._install import install_command
from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import ConfigurationError

from .blob.base import BlobStore
from .bus.base import EventBus
from .kv.base import KVStore
from .store.base import StateStore

T = TypeVar("T")

# scheme -> (module:Class, the pip extra that provides its driver)
BUSES: dict[str, tuple[str, str | None]] = {
    "memory": ("tickrail.adapters.bus.memory:MemoryBus", None),
    "kafka": ("tickrail.adapters.bus.kafka:KafkaBus", "kafka"),
}
STORES: dict[str, tuple[str, str | None]] = {
    "memory": ("tickrail.adapters.store.memory:MemoryStore", None),
    "sqlite": ("tickrail.adapters.store.sqlite:SQLiteStore", None),
    "postgres": ("tickrail.adapters.store.postgres:PostgresStore", "postgres"),
    "postgresql": ("tickrail.adapters.store.postgres:PostgresStore", "postgres"),
}
BLOBS: dict[str, tuple[str, str | None]] = {
    "file": ("tickrail.adapters.blob.file:FileBlobStore", None),
    "memory": ("tickrail.adapters.blob.memory:MemoryBlobStore", None),
    "s3": ("tickrail.adapters.blob.s3:S3BlobStore", "s3"),
}
KVS: dict[str, tuple[str, str | None]] = {
    "memory": ("tickrail.adapters.kv.memory:MemoryKV", None),
    "redis": ("tickrail.adapters.kv.redis:RedisKV", "redis"),
    "rediss": ("tickrail.adapters.kv.redis:RedisKV", "redis"),
}


def _open(kind: str, table: dict[str, tuple[str, str | None]], url: str, options: Any) -> Any:
    scheme = urlsplit(url).scheme
    if scheme not in table:
        known = ", ".join(f"{s}://" for s in sorted(table))
        raise ConfigurationError(
            f"unsupported {kind} URL {redact_url(url)!r}: scheme must be one of {known}"
        )
    target, extra = table[scheme]
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; install it with: {install_command(extra)}" if extra else ""
        raise ConfigurationError(
            f"{kind} URL {redact_url(url)!r}"
            f" needs a driver that is not installed ({exc.name}){hint}"
        ) from exc
    return getattr(module, class_name)(url, **options)


def open_bus(url: str, **options: Any) -> EventBus:
    """An EventBus for ``url`` (not yet started: use ``async with`` or ``start()``)."""
    bus: EventBus = _open("bus", BUSES, url, options)
    return bus


def open_store(url: str, **options: Any) -> StateStore:
    store: StateStore = _open("store", STORES, url, options)
    return store


def open_blob_store(url: str, **options: Any) -> BlobStore:
    blobs: BlobStore = _open("blob", BLOBS, url, options)
    return blobs


def open_kv(url: str, **options: Any) -> KVStore:
    kv: KVStore = _open("kv", KVS, url, options)
    return kv
