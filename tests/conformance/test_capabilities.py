"""Optional adapter capabilities: each one's contract, run where it is declared.

An implementation declares a capability by subclassing its Protocol
(``adapters/*/base.py``); callers test for it with ``isinstance``. Every test
here runs against every implementation of the kind and skips those that do
not declare the capability, so a new implementation gets the tests of what it
claims for free.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.services import random_name
from tickrail.adapters import (
    EventBus,
    Message,
    MessageSizeLimit,
    RebalanceHooks,
    ReportsLag,
    StateStore,
    UnitOfWork,
    Wakeable,
)
from tickrail.adapters.bus.memory import MemoryBus, MemoryConsumer
from tickrail.adapters.store.base import unit_of_work
from tickrail.adapters.store.memory import MemoryStore
from tickrail.adapters.store.sqlite import SQLiteStore

from .test_bus_contract import collect
from .test_store_contract import event, execution


def declared(adapter: object, capability: type) -> None:
    if not isinstance(adapter, capability):
        pytest.skip(f"{type(adapter).__name__} does not declare {capability.__name__}")


def test_the_implementations_declare_what_they_implement() -> None:
    # A capability lost by a refactor must not silently turn into a no-op.
    assert issubclass(MemoryConsumer, ReportsLag) and issubclass(MemoryConsumer, Wakeable)
    assert issubclass(SQLiteStore, UnitOfWork)
    assert not isinstance(MemoryBus("memory://"), MessageSizeLimit)  # no limit to respect
    assert not isinstance(MemoryStore("memory://"), UnitOfWork)
    try:
        from tickrail.adapters.bus.kafka import KafkaBus, KafkaConsumer
    except ModuleNotFoundError:  # the kafka extra is not installed
        return
    assert issubclass(KafkaConsumer, ReportsLag) and issubclass(KafkaConsumer, RebalanceHooks)
    assert isinstance(KafkaBus("kafka://localhost:9092"), MessageSizeLimit)


# ---- bus: ReportsLag, RebalanceHooks, Wakeable, MessageSizeLimit -------------


async def test_lag_counts_what_was_published_and_not_delivered(bus: EventBus) -> None:
    topic, group = random_name("lag"), random_name("g")
    consumer = await bus.subscribe([topic], group)
    declared(consumer, ReportsLag)
    assert isinstance(consumer, ReportsLag)
    await bus.publish([Message(topic, "k", f"m{i}".encode()) for i in range(5)])
    got: list[Message] = []
    async with asyncio.timeout(30):
        while len(got) < 2:
            got += await consumer.poll(max_messages=2 - len(got), timeout=0.5)
    assert consumer.lag() == 3
    rest = await collect(consumer, 3)
    assert len(rest) == 3 and consumer.lag() == 0
    await consumer.commit(got + rest)
    await consumer.close()


async def test_rebalance_hooks_hear_partitions_move(bus: EventBus) -> None:
    topic, group = random_name("rebal"), random_name("g")
    first = await bus.subscribe([topic], group)
    declared(first, RebalanceHooks)
    assert isinstance(first, RebalanceHooks)
    heard: list[str] = []
    first.on_rebalance(lambda: heard.append("first"))
    second = await bus.subscribe([topic], group)  # takes some partitions away
    async with asyncio.timeout(30):
        while not heard:
            await first.poll(10, timeout=0.2)  # the rebalance runs as the member polls
    await second.close()
    await first.close()
    assert heard, "the first member was not told its partitions changed"


async def test_wakeup_ends_a_waiting_poll(bus: EventBus) -> None:
    consumer = await bus.subscribe([random_name("wake")], random_name("g"))
    declared(consumer, Wakeable)
    assert isinstance(consumer, Wakeable)
    polling = asyncio.create_task(consumer.poll(10, timeout=600))
    async with asyncio.timeout(30):  # far less than the poll's own timeout
        while not polling.done():  # a wakeup before the poll waits has nothing to end
            consumer.wakeup()
            await asyncio.wait({polling}, timeout=0.05)
    assert polling.result() == []
    await consumer.close()


async def test_a_message_at_the_declared_size_limit_goes_through(bus: EventBus) -> None:
    declared(bus, MessageSizeLimit)
    assert isinstance(bus, MessageSizeLimit)
    limit = bus.max_message_bytes
    assert limit > 0
    topic = random_name("big")
    consumer = await bus.subscribe([topic], random_name("g"))
    value = bytes(range(256)) * (limit // 256) + b"x" * (limit % 256)
    await bus.publish([Message(topic, "k", value)])
    (got,) = await collect(consumer, 1, timeout=60)
    assert got.value == value
    await consumer.commit([got])
    await consumer.close()


# ---- store: UnitOfWork -------------------------------------------------------


async def test_a_unit_of_work_commits_together_or_not_at_all(store: StateStore) -> None:
    declared(store, UnitOfWork)
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with unit_of_work(store):
            await store.append_executions([execution("U.1.1", lifetime="U")])
            await store.append_events([event("U/started", "U")])
            raise RuntimeError("changed my mind")
    assert await store.executions("U") == [] and await store.events("U") == []
    async with unit_of_work(store):
        await store.append_executions([execution("U.1.1", lifetime="U")])
        await store.append_events([event("U/started", "U")])
        async with unit_of_work(store):  # nested: part of the outer one
            await store.append_events([event("U/routed", "U")])
    assert [r.exec_id for r in await store.executions("U")] == ["U.1.1"]
    assert [r.event_id for r in await store.events("U")] == ["U/started", "U/routed"]


async def test_without_a_unit_of_work_appends_still_commit(store: StateStore) -> None:
    # The helper is a no-op context for stores that do not declare it.
    async with unit_of_work(store):
        await store.append_events([event("N/started", "N")])
    assert [r.event_id for r in await store.events("N")] == ["N/started"]
