"""The BlobStore contract: write-once bytes addressed by URI."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable


@runtime_checkable
class BlobStore(Protocol):
    """Stores large results. Chosen by URL scheme.

    Keys are relative paths (``tenant/lifetime/exec_id``); ``put`` returns the
    URI that ``get`` accepts. Integrity (size and SHA-256) is checked by the
    caller against the digest recorded in the envelope.

    ``get`` accepts only URIs this store could have created (under its root,
    or its bucket and prefix, after resolving symlinks and ``..``); with
    ``tenant``, only that tenant's keys. Anything else is an AdapterError that
    says "refused" and nothing about whether the target exists.
    """

    async def start(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key`` and return its URI."""
        ...

    async def get(self, uri: str, *, tenant: str | None = None) -> bytes:
        """Return the bytes stored at ``uri``; AdapterError if absent or refused."""
        ...

    async def close(self) -> None: ...
