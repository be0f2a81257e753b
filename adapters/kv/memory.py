"""In-process KV (``memory://``): the embedded and test profiles' KV store."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._lifecycle import Lifecycle
from .base import Counted, CounterKey


class MemoryKV(Lifecycle):
    """A dict with expiry. Single-threaded asyncio makes every update atomic."""

    def __init__(self, url: str = "memory://", **_: Any) -> None:
        self._values: dict[str, bytes] = {}
        self._hashes: dict[str, dict[str, float]] = {}
        self._sets: dict[str, set[str]] = {}
        self._expiry: dict[str, float] = {}

    def _expired(self, key: str) -> bool:
        deadline = self._expiry.get(key)
        if deadline is not None and time.monotonic() >= deadline:
            self._values.pop(key, None)
            self._hashes.pop(key, None)
            self._sets.pop(key, None)
            del self._expiry[key]
            return True
        return False

    async def get(self, key: str) -> bytes | None:
        self._check_open()
        self._expired(key)
        return self._values.get(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._check_open()
        self._values[key] = value
        if ttl is not None:
            self._expiry[key] = time.monotonic() + ttl
        else:
            self._expiry.pop(key, None)

    async def update_counters(
        self,
        key: str,
        add: Mapping[str, float] | None = None,
        maximum: Mapping[str, float] | None = None,
        ttl: float | None = None,
    ) -> dict[str, float]:
        self._check_open()
        self._expired(key)
        counters = self._hashes.get(key)
        if counters is None:
            counters = self._hashes[key] = {}
            if ttl is not None:
                self._expiry[key] = time.monotonic() + ttl
        for field, value in (add or {}).items():
            counters[field] = counters.get(field, 0.0) + value
        for field, value in (maximum or {}).items():
            current = counters.get(field)
            if current is None or value > current:
                counters[field] = value
        return dict(counters)

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
        self._check_open()
        self._expired(marker)
        if marker not in self._values:
            return None
        self._expired(seen)
        members = self._sets.setdefault(seen, set())
        if token in members:
            return Counted(False, [await self.get_counters(k.key) for k in keys])
        members.add(token)
        counters = [
            await self.update_counters(k.key, add=add, maximum=maximum, ttl=k.ttl) for k in keys
        ]
        return Counted(True, counters)

    async def expire(self, key: str, ttl: float) -> None:
        self._check_open()
        self._expired(key)
        if key in self._values or key in self._hashes or key in self._sets:
            self._expiry[key] = time.monotonic() + ttl

    async def get_counters(self, key: str) -> dict[str, float]:
        self._check_open()
        self._expired(key)
        return dict(self._hashes.get(key, {}))

    async def delete(self, key: str) -> None:
        self._check_open()
        self._values.pop(key, None)
        self._hashes.pop(key, None)
        self._sets.pop(key, None)
        self._expiry.pop(key, None)
