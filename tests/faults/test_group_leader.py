"""A group member that leaves while its group is forming never stalls the group.

Tansu keeps a leader that sends LeaveGroup before the group formed again (another
member had just joined) as the group's leader for ever: every later member waits
for that leader's assignment, which never comes. After a broker restart with two
executors in one group (docs/deploy.md), one of them left that way when its commit
failed, and neither got partitions again. So a leader (or a member whose join is
not complete) leaves by its session timing out, and a new leader is elected.
"""

from __future__ import annotations

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.protocol.group import JoinGroupRequest

from tests.services import kafka_url, random_name
from tickrail.adapters import Message
from tickrail.adapters.bus.kafka import KafkaBus

from .test_partition_recreated import received

__all__ = ["kafka_url"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def start_joining(bootstrap: list[str], group: str, topic: str) -> None:
    """A member's first JoinGroup (the broker hands out its member id): the group
    is forming from then on, until its leader syncs an assignment again."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = next(iter(client.cluster.brokers())).nodeId
        metadata = RoundRobinPartitionAssignor.metadata([topic]).encode()
        request = JoinGroupRequest(
            group, 6000, 300000, "", None, "consumer", [("roundrobin", metadata)]
        )
        response = await client.send(node, request)
        assert response.member_id, response
    finally:
        await client.close()


async def test_a_leader_leaving_a_forming_group_does_not_stall_it(kafka_url: str) -> None:
    topic, group = random_name("leader."), random_name("g")
    # The leader heartbeats rarely, so it does not notice the new member (and
    # sync the group again) before it is closed.
    async with KafkaBus(f"{kafka_url}?partitions=2&heartbeat_interval_ms=5000") as bus:
        leader = await bus.subscribe([topic], group)
        await start_joining(bus.settings.bootstrap, group, topic)
        await leader.close()
        # A member joining now is elected leader once the old one's session
        # times out; without that it never gets an assignment.
        member = await bus.subscribe([topic], group)
        try:
            await bus.publish([Message(topic, f"k{i}", f"m{i}".encode()) for i in range(4)])
            assert len(await received(member, 4)) == 4
        finally:
            await member.close()
