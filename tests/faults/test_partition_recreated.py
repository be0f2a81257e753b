"""A partition that the broker lost and created anew, shorter than where a member
stands in it: the member reads it again from its start, whether it is in a group
(its position came from offsets committed before the loss) or a watcher outside
any group. Tansu answers a fetch past a partition's end with nothing (a Kafka
answers OffsetOutOfRange), so without the rewind the member waits for ever below
what is published after the loss: the lifetimes a broker restart left unfinished.
"""

from __future__ import annotations

import asyncio
import time

import pytest
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
