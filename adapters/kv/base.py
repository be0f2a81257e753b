"""The KVStore contract: small values and atomically updated counter hashes."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Protocol, Self, runtime_checkable


@runtime_checkable
class KVStore(Protocol):
    """Keeps guardrail aggregates and other small state. Chosen by URL scheme."""

    async def start(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def update_counters(
        self,
        key: str,
        add: Mapping[str, float] | None = None,
        maximum: Mapping[str, float] | None = None,
        ttl: float | None = None,
    ) -> dict[str, float]:
        """Atomically update the counter hash at ``key`` and return all its fields.

        Each field in ``add`` is incremented by its value; each field in
        ``maximum`` becomes the larger of its current value and the given one.
        Missing fields start at 0. ``ttl`` (seconds) is set when the hash is
        created, for windowed aggregates such as a daily budget.
        """
        ...

    async def get_counters(self, key: str) -> dict[str, float]:
        """The counter hash at ``key`` (empty if absent)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` (used when an aggregate is rebuilt from the store)."""
        ...

    async def close(self) -> None: ...
