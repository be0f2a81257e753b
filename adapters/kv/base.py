"""The KVStore contract: small values and atomically updated counter hashes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable


@dataclass(frozen=True, slots=True)
class CounterKey:
    """One counter hash ``count_once`` updates; ``ttl`` is set when it is created."""

    key: str
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class Counted:
    """What ``count_once`` did: ``counted`` is False when ``token`` was counted before
    (nothing changed); ``counters`` are the hashes' fields afterwards, in order."""

    counted: bool
    counters: list[dict[str, float]]


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

    async def count_once(
        self,
        *,
        marker: str,
        seen: str,
        token: str,
        keys: Sequence[CounterKey],
        add: Mapping[str, float],
        maximum: Mapping[str, float],
    ) -> Counted | None:
        """Add ``add``/``maximum`` to every hash in ``keys``, once per ``token``.

        In one atomic step: if the value at ``marker`` is absent, change nothing
        and return None (the store lost its data, or was never filled: the
        caller rebuilds the hashes and writes the marker); if ``token`` is in
        the set at ``seen`` already, change nothing; else add it there and
        update every hash as ``update_counters`` does. A redelivered execution
        is therefore counted once, however often it is evaluated.
        """
        ...

    async def expire(self, key: str, ttl: float) -> None:
        """Remove ``key`` (value, hash or set) ``ttl`` seconds from now, if it exists."""
        ...

    async def get_counters(self, key: str) -> dict[str, float]:
        """The counter hash at ``key`` (empty if absent)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` (used when an aggregate is rebuilt from the store)."""
        ...

    async def close(self) -> None: ...
