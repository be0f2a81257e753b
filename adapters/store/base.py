"""The StateStore contract: an append-only log of executions and lifetime events.

There is deliberately no operation that updates or deletes a recorded row.
Lifetime state (status, counters, join progress) is a projection of this log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from .._capability import offers


@dataclass(frozen=True, slots=True)
class NewExecution:
    """An execution envelope to record, with the columns the store indexes."""

    exec_id: str
    lifetime_id: str
    tenant_id: str
    name: str
    kind: int  # sdk.pb.envelope_pb2.NodeKind
    status: int  # sdk.pb.envelope_pb2.ExecutionStatus
    created_at: float  # unix seconds
    envelope: bytes  # serialized ExecutionEnvelope, results already offloaded


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """A recorded execution. ``created`` is True when this append recorded it."""

    seq: int
    exec_id: str
    lifetime_id: str
    tenant_id: str
    name: str
    kind: int
    status: int
    created_at: float
    envelope: bytes
    created: bool = False

    @classmethod
    def of(cls, seq: int, new: NewExecution, created: bool) -> ExecutionRecord:
        """The record of ``new`` stored at ``seq`` (field by field: asdict deep-copies)."""
        return cls(
            seq,
            new.exec_id,
            new.lifetime_id,
            new.tenant_id,
            new.name,
            new.kind,
            new.status,
            new.created_at,
            new.envelope,
            created,
        )


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A lifetime event to record.

    ``status`` is the lifetime's status after this event (a LifetimeStatus
    value), so listing lifetimes needs no replay.
    """

    event_id: str
    lifetime_id: str
    tenant_id: str
    graph_id: str
    kind: str  # the LifetimeEvent oneof name: started, routed, guardrail, ...
    status: int
    created_at: float
    body: bytes  # serialized LifetimeEvent


@dataclass(frozen=True, slots=True)
class EventRecord:
    seq: int
    event_id: str
    lifetime_id: str
    tenant_id: str
    graph_id: str
    kind: str
    status: int
    created_at: float
    body: bytes


@dataclass(frozen=True, slots=True)
class LifetimeSummary:
    lifetime_id: str
    tenant_id: str
    graph_id: str
    status: int
    started_at: float
    updated_at: float
    events: int


def summarize(events: Sequence[EventRecord]) -> LifetimeSummary:
    """A lifetime's summary from its own events (in order; at least one).

    The same answer ``list_lifetimes`` gives for it, without listing the rest.
    """
    first, last = events[0], events[-1]
    return LifetimeSummary(
        lifetime_id=first.lifetime_id,
        tenant_id=first.tenant_id,
        graph_id=first.graph_id,
        status=last.status,
        started_at=first.created_at,
        updated_at=last.created_at,
        events=len(events),
    )


@runtime_checkable
class StateStore(Protocol):
    """Append-only store of executions and events. Chosen by URL scheme."""

    async def start(self) -> None:
        """Connect. ``async with`` calls it."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def setup(self) -> list[int]:
        """Create or migrate the schema. Idempotent; safe to call on every start.

        Returns the versions of the migrations this call applied (none: up to date).
        """
        ...

    async def append_executions(self, batch: Sequence[NewExecution]) -> list[ExecutionRecord]:
        """Record a batch in one transaction, idempotent on ``exec_id``.

        Returns one record per input, in input order: the stored row, with
        ``created=False`` where that exec id had been recorded before (the
        stored envelope wins; a redelivery never creates a second record).
        """
        ...

    async def append_events(self, batch: Sequence[NewEvent]) -> list[bool]:
        """Record a batch in one transaction, idempotent on ``event_id``.

        Returns, per input, whether it was new.
        """
        ...

    async def get_execution(self, exec_id: str) -> ExecutionRecord | None: ...

    async def executions(self, lifetime_id: str) -> list[ExecutionRecord]:
        """Every execution of a lifetime, in the order they were recorded."""
        ...

    async def events(self, lifetime_id: str, after_seq: int = 0) -> list[EventRecord]:
        """The lifetime's events with ``seq > after_seq``, in order."""
        ...

    async def list_lifetimes(
        self,
        *,
        tenant_id: str | None = None,
        status: int | None = None,
        limit: int = 100,
    ) -> list[LifetimeSummary]:
        """Lifetimes, newest first, filtered by tenant and current status."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class UnitOfWork(Protocol):
    """Optional StateStore capability (declared by subclassing): one transaction
    around several appends."""

    def unit_of_work(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Appends made inside the block by this task commit together when it
        exits, and roll back if it raises."""
        ...


def unit_of_work(store: StateStore) -> contextlib.AbstractAsyncContextManager[None]:
    """One transaction around several appends, where the store offers it.

    Stores without ``UnitOfWork`` commit each append on its own, which is also
    correct; the embedded profile uses it to record an execution and the
    decisions it caused with one commit instead of two.
    """
    if offers(store, UnitOfWork):  # type: ignore[type-abstract]
        return store.unit_of_work()
    return contextlib.nullcontext()
