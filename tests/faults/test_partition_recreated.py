"""A partition that the broker lost and created anew, shorter than where a member
stands in it: the member reads it again from its start, whether it is in a group
(its position came from offsets committed before the loss) or a watcher outside
any group. Tansu answers a fetch past a partition's end with nothing (a Kafka
answers OffsetOutOfRange), so without the rewind the member waits for ever below
what is published after the loss: the lifetimes a broker restart left unfinished.

Right after a restart Tansu can also serve a record past the end offset it reports;
such a partition is read again at most once, not every second for ever (the API's
watcher did, logging each time).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.services import kafka_url, random_name
from tickrail.adapters import Consumer, Message
from tickrail.adapters.bus.kafka import KafkaBus

__all__ = ["kafka_url"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def received(consumer: Consumer, count: int, timeout: float = 60) -> list[Message]:
    """Poll until ``count`` messages came (committing them), or fail after ``timeout`` s."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} messages came"
        batch = await consumer.poll(100, timeout=0.5)
        await consumer.commit(batch)
        got += batch
    return got


async def recreate(bus: KafkaBus, topic: str) -> None:
    """What a broker that lost its data looks like to a member: the topic is gone,
    then created again empty, while the member keeps its place in the old one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.settings.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        for _ in range(100):  # the deletion may take a moment to show
            if topic not in await admin.list_topics():
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    bus.forget_topics()
    await bus.ensure_topics([topic])


@pytest.mark.parametrize("watcher", [False, True], ids=["group-member", "watcher"])
async def test_a_recreated_shorter_partition_is_read_again_from_its_start(
    kafka_url: str, watcher: bool
) -> None:
    topic = random_name("recreated.")
    async with KafkaBus(f"{kafka_url}?partitions=1") as bus:
        rebalanced: list[int] = []
        consumer = await bus.subscribe([topic], random_name("g"), from_end=watcher)
        consumer.on_rebalance(lambda: rebalanced.append(1))  # type: ignore[attr-defined]
        try:
            await bus.publish([Message(topic, "k", f"before-{i}".encode()) for i in range(8)])
            assert len(await received(consumer, 8)) == 8
            rebalanced.clear()
            await recreate(bus, topic)
            await bus.publish([Message(topic, "k", f"after-{i}".encode()) for i in range(2)])
            after = await received(consumer, 2)
            assert [m.value for m in after] == [b"after-0", b"after-1"]
            assert [m.offset for m in after] == [0, 1]
            # A role that caches what the broker held is told (the control plane
            # then re-dispatches from the store).
            assert rebalanced
        finally:
            await consumer.close()


def under_report_the_end(consumer: Consumer) -> None:
    """Make the broker look as Tansu does after a produce that failed with
    AlreadyExists: it serves one record past the end offset it reports (in the
    fetch's high watermark and in ListOffsets alike)."""
    raw = consumer.raw  # type: ignore[attr-defined]
    highwater, end_offsets = raw.highwater, raw.end_offsets

    def lower_highwater(tp: TopicPartition) -> int | None:
        value = highwater(tp)
        return None if value is None else max(0, value - 1)

    async def lower_end_offsets(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: max(0, end - 1) for tp, end in (await end_offsets(partitions)).items()}

    raw.highwater, raw.end_offsets = lower_highwater, lower_end_offsets


@pytest.mark.parametrize("watcher", [False, True], ids=["group-member", "watcher"])
async def test_a_partition_served_past_its_end_is_not_read_again_for_ever(
    kafka_url: str, watcher: bool, caplog: pytest.LogCaptureFixture
) -> None:
    topic = random_name("past-end.")
    async with KafkaBus(f"{kafka_url}?partitions=1") as bus:
        consumer = await bus.subscribe([topic], random_name("g"), from_end=watcher)
        try:
            under_report_the_end(consumer)
            await bus.publish([Message(topic, "k", f"m{i}".encode()) for i in range(3)])
            # Reading it again from its start would end past its end again:
            # at most one rewind, then it waits (quietly) for the partition,
            # also when what it reads comes one record at a time.
            got: list[Message] = []
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                batch = await consumer.poll(1, timeout=0.5)
                await consumer.commit(batch)
                got += batch
            await bus.publish([Message(topic, "k", b"later")])
            got += await received(consumer, 1)
            rewinds = [r for r in caplog.records if "shorter than this member" in r.message]
            assert len(rewinds) <= 1, [r.message for r in rewinds]
            assert [m.value for m in got].count(b"later") == 1
            assert len(got) <= 3 + 3 + 1  # at most the one rewind delivered again
        finally:
            await consumer.close()
