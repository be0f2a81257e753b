"""StateStore contract: idempotent appends, ordering, lifetime listing, append-only."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import pytest

from tickrail.adapters import NewEvent, NewExecution, StateStore
from tickrail.sdk.errors import AdapterClosedError

from .conftest import StoreCase

_clock = itertools.count(1_700_000_000)


def execution(
    exec_id: str, lifetime: str = "L1", envelope: bytes = b"env", **kw: object
) -> NewExecution:
    fields: dict[str, object] = {
        "exec_id": exec_id,
        "lifetime_id": lifetime,
        "tenant_id": "tenant-a",
        "name": "summarise",
        "kind": 1,
        "status": 2,
        "created_at": next(_clock) + 0.25,
        "envelope": envelope,
    }
    fields.update(kw)
    return NewExecution(**fields)  # type: ignore[arg-type]


def event(event_id: str, lifetime: str, status: int = 1, tenant: str = "tenant-a") -> NewEvent:
    return NewEvent(
        event_id=event_id,
        lifetime_id=lifetime,
        tenant_id=tenant,
        graph_id=f"graph-{lifetime}",
        kind="routed",
        status=status,
        created_at=next(_clock) + 0.5,
        body=f"body-{event_id}".encode(),
    )


async def test_append_execution_is_idempotent_and_first_envelope_wins(store: StateStore) -> None:
    first = execution("x1", envelope=b"first")
    [created] = await store.append_executions([first])
    assert created.created and created.seq > 0
    assert (created.exec_id, created.envelope, created.created_at) == (
        "x1",
        b"first",
        first.created_at,
    )

    [again] = await store.append_executions([replace(first, envelope=b"second", status=9)])

    stored = replace(created, created=False)
    assert again == stored
    assert await store.get_execution("x1") == stored
    assert await store.executions("L1") == [stored]
    assert await store.get_execution("missing") is None


async def test_batch_with_duplicates_inside(store: StateStore) -> None:
    a, b, c = execution("a"), execution("b"), execution("c")
    [old] = await store.append_executions([execution("old", envelope=b"old")])

    records = await store.append_executions(
        [a, b, replace(a, envelope=b"dup"), execution("old", envelope=b"new"), c]
    )

    assert [r.exec_id for r in records] == ["a", "b", "a", "old", "c"]
    assert [r.created for r in records] == [True, True, False, False, True]
    assert records[2] == replace(records[0], created=False)
    assert records[3] == replace(old, created=False)
    assert old.seq < records[0].seq < records[1].seq < records[4].seq
    assert [r.exec_id for r in await store.executions("L1")] == ["old", "a", "b", "c"]
    assert (await store.get_execution("a")).envelope == a.envelope  # type: ignore[union-attr]


async def test_executions_are_per_lifetime_in_seq_order(store: StateStore) -> None:
    await store.append_executions([execution(f"e{i}", lifetime=f"L{i % 2}") for i in range(6)])
    await store.append_executions([execution("e6", lifetime="L0")])
    l0 = await store.executions("L0")
    assert [r.exec_id for r in l0] == ["e0", "e2", "e4", "e6"]
    assert [r.seq for r in l0] == sorted(r.seq for r in l0)
    assert await store.executions("nobody") == []


async def test_event_idempotency_and_order(store: StateStore) -> None:
    e1, e2, e3 = event("v1", "L1"), event("v2", "L1", status=2), event("v3", "L2")
    assert await store.append_events([e1, e2, e1, e3]) == [True, True, False, True]
    assert await store.append_events([e2, event("v4", "L1", status=3)]) == [False, True]

    events = await store.events("L1")
    assert [e.event_id for e in events] == ["v1", "v2", "v4"]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert events[0].body == e1.body and events[0].created_at == e1.created_at
    assert (events[0].graph_id, events[0].kind, events[0].status) == ("graph-L1", "routed", 1)
    assert [e.event_id for e in await store.events("L1", after_seq=events[0].seq)] == ["v2", "v4"]
    assert await store.events("L1", after_seq=events[-1].seq) == []


async def test_list_lifetimes_newest_first_with_filters(store: StateStore) -> None:
    a1, b1, c1, a2 = (
        event("a1", "A", status=1),
        event("b1", "B", status=1, tenant="tenant-b"),
        event("c1", "C", status=1),
        event("a2", "A", status=3),  # A's latest event comes after C started
    )
    await store.append_events([a1, b1])
    await store.append_events([c1])
    await store.append_events([a2])

    everything = await store.list_lifetimes()
    assert [s.lifetime_id for s in everything] == ["C", "B", "A"]
    summary_a = everything[2]
    assert (summary_a.status, summary_a.events, summary_a.tenant_id) == (3, 2, "tenant-a")
    assert (summary_a.started_at, summary_a.updated_at) == (a1.created_at, a2.created_at)
    assert summary_a.graph_id == "graph-A"

    def ids(summaries: list) -> list[str]:  # type: ignore[type-arg]
        return [s.lifetime_id for s in summaries]

    assert ids(await store.list_lifetimes(tenant_id="tenant-a")) == ["C", "A"]
    assert ids(await store.list_lifetimes(status=1)) == ["C", "B"]
    assert ids(await store.list_lifetimes(tenant_id="tenant-a", status=3)) == ["A"]
    assert ids(await store.list_lifetimes(limit=2)) == ["C", "B"]
    assert await store.list_lifetimes(tenant_id="nobody") == []


async def test_updates_and_deletes_are_refused_by_the_database(
    store: StateStore, store_case: StoreCase
) -> None:
    if store_case.raw is None:
        pytest.skip(f"{store_case.kind} has no SQL to bypass the adapter with")
    await store.append_executions([execution("x1")])
    await store.append_events([event("v1", "L1")])
    for sql in (
        "UPDATE executions SET name = 'changed'",
        "DELETE FROM executions",
        "UPDATE events SET status = 9",
        "DELETE FROM events",
    ):
        with pytest.raises(Exception, match="append-only"):
            await store_case.raw(sql)
    if store_case.kind == "postgres":
        for table in ("executions", "events", "lifetimes"):
            with pytest.raises(Exception, match="append-only"):
                await store_case.raw(f"TRUNCATE {table}")
    assert [r.exec_id for r in await store.executions("L1")] == ["x1"]
    assert len(await store.events("L1")) == 1


async def test_setup_twice_and_reopen_keep_data(store: StateStore, store_case: StoreCase) -> None:
    assert await store.setup() == []  # the fixture's setup applied everything
    await store.append_executions([execution("x1")])
    if store_case.raw is None:
        return  # nothing outlives a memory store
    await store.close()
    reopened = await store_case.open()
    try:
        await reopened.setup()
        assert [r.exec_id for r in await reopened.executions("L1")] == ["x1"]
    finally:
        await reopened.close()


async def test_concurrent_setup_on_a_fresh_store(store_case: StoreCase) -> None:
    # Several replicas starting at once must not race each other's migrations.
    stores = [await store_case.open() for _ in range(3)]
    try:
        applied = await asyncio.gather(*(s.setup() for s in stores))
        # Each migration was applied exactly once, by one of them.
        flat = [v for versions in applied for v in versions]
        assert len(flat) == len(set(flat))
        assert flat or store_case.raw is None
        await stores[0].append_executions([execution("x1")])
        if store_case.raw is not None:
            assert (await stores[2].get_execution("x1")) is not None
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_use_after_close_is_refused(store: StateStore) -> None:
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(AdapterClosedError):
        await store.get_execution("x1")
    with pytest.raises(AdapterClosedError):
        await store.append_executions([execution("x1")])
    with pytest.raises(AdapterClosedError):
        await store.list_lifetimes()
