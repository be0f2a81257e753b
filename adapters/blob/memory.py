"""In-process blobs (``memory://``), for unit tests."""

from __future__ import annotations

from typing import Any

from tickrail.sdk.errors import AdapterError

from .._lifecycle import Lifecycle
from ._confine import check_key, check_tenant, refused


class MemoryBlobStore(Lifecycle):
    def __init__(self, url: str = "memory://", **_: Any) -> None:
        self._blobs: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        self._check_open()
        uri = f"memory://{key}"
        self._blobs[uri] = bytes(data)
        return uri

    async def get(self, uri: str, *, tenant: str | None = None) -> bytes:
        self._check_open()
        if not uri.startswith("memory://"):
            raise refused(uri)
        check_tenant(check_key(uri.removeprefix("memory://"), uri), tenant, uri)
        try:
            return self._blobs[uri]
        except KeyError:
            raise AdapterError(f"blob not found: {uri}") from None
