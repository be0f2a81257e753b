"""In-process StateStore (``memory://``): the test profile's store."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from .._lifecycle import Lifecycle
from .base import EventRecord, ExecutionRecord, LifetimeSummary, NewEvent, NewExecution


class MemoryStore(Lifecycle):
    """Keeps every record in lists; nothing survives the process."""

    def __init__(self, url: str = "memory://", **_: Any) -> None:
        self._seq = itertools.count(1)
        self._executions: dict[str, ExecutionRecord] = {}
        self._by_lifetime: dict[str, list[ExecutionRecord]] = {}
        self._event_ids: set[str] = set()
        self._events: dict[str, list[EventRecord]] = {}
        self._order: list[str] = []  # lifetimes by first event

    async def setup(self) -> list[int]:
        self._check_open()
        return []  # nothing to migrate in memory

    async def append_executions(self, batch: Sequence[NewExecution]) -> list[ExecutionRecord]:
        self._check_open()
        out: list[ExecutionRecord] = []
        for new in batch:
            existing = self._executions.get(new.exec_id)
            if existing is not None:
                out.append(existing)
                continue
            seq = next(self._seq)
            record = ExecutionRecord.of(seq, new, created=True)
            stored = ExecutionRecord.of(seq, new, created=False)
            self._executions[new.exec_id] = stored
            self._by_lifetime.setdefault(new.lifetime_id, []).append(stored)
            out.append(record)
        return out

    async def append_events(self, batch: Sequence[NewEvent]) -> list[bool]:
        self._check_open()
        out: list[bool] = []
        for new in batch:
            if new.event_id in self._event_ids:
                out.append(False)
                continue
            self._event_ids.add(new.event_id)
            events = self._events.get(new.lifetime_id)
            if events is None:
                events = self._events[new.lifetime_id] = []
                self._order.append(new.lifetime_id)
            n = new
            events.append(
                EventRecord(
                    next(self._seq),
                    n.event_id,
                    n.lifetime_id,
                    n.tenant_id,
                    n.graph_id,
                    n.kind,
                    n.status,
                    n.created_at,
                    n.body,
                )
            )
            out.append(True)
        return out

    async def get_execution(self, exec_id: str) -> ExecutionRecord | None:
        self._check_open()
        return self._executions.get(exec_id)

    async def executions(self, lifetime_id: str) -> list[ExecutionRecord]:
        self._check_open()
        return list(self._by_lifetime.get(lifetime_id, ()))

    async def events(self, lifetime_id: str, after_seq: int = 0) -> list[EventRecord]:
        self._check_open()
        return [e for e in self._events.get(lifetime_id, ()) if e.seq > after_seq]

    async def list_lifetimes(
        self,
        *,
        tenant_id: str | None = None,
        status: int | None = None,
        limit: int = 100,
    ) -> list[LifetimeSummary]:
        self._check_open()
        out: list[LifetimeSummary] = []
        for lifetime_id in reversed(self._order):
            events = self._events[lifetime_id]
            first, last = events[0], events[-1]
            if tenant_id is not None and last.tenant_id != tenant_id:
                continue
            if status is not None and last.status != status:
                continue
            out.append(
                LifetimeSummary(
                    lifetime_id=lifetime_id,
                    tenant_id=last.tenant_id,
                    graph_id=last.graph_id,
                    status=last.status,
                    started_at=first.created_at,
                    updated_at=last.created_at,
                    events=len(events),
                )
            )
            if len(out) >= limit:
                break
        return out
