"""A control-plane batch that fails half-way (decisions appended, inputs not yet on the
bus) is handled again without losing or renaming anything."""

from __future__ import annotations

from collections.abc import Sequence

from tickrail.adapters import Message
from tickrail.adapters.bus.memory import MemoryBus
from tickrail.adapters.store.memory import MemoryStore
from tickrail.sdk._payload import encode
from tickrail.sdk.errors import AdapterError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.control_plane.service import ControlPlane
from tickrail.services.dispatch import DispatchSigner
from tickrail.services.topics import Topics

from .graphs import fan_out_graph


class FlakyBus(MemoryBus):
    """Refuses the next ``failures`` publishes, like a broker that went away."""

    failures = 0
    published: list[Message]

    async def publish(self, messages: Sequence[Message]) -> None:
        if self.failures:
            self.failures -= 1
            raise AdapterError("broker unreachable", retriable=True, dependency="kafka")
        self.published.extend(messages)
        await super().publish(messages)


def start_message(topics: Topics, lifetime_id: str) -> Message:
    graph = fan_out_graph()
    command = pb.LifetimeCommand(
        command_id=f"start-{lifetime_id}",
        lifetime_id=lifetime_id,
        tenant_id="acme",
        start=pb.StartLifetime(
            lifetime_id=lifetime_id, tenant_id="acme", graph=graph.spec, input=encode(1)
        ),
    )
    return Message(topics.commands(), lifetime_id, command.SerializeToString())


async def test_a_batch_retried_after_a_failed_publish_dispatches_the_same_inputs() -> None:
    topics = Topics()
    async with FlakyBus() as bus, MemoryStore() as store:
        bus.published = []
        plane = ControlPlane(bus, store, topics, signer=DispatchSigner(b"k" * 32))
        batch = [start_message(topics, "lt-a"), start_message(topics, "lt-b")]
        bus.failures = 1
        try:
            await plane.handle(batch)
        except AdapterError:
            pass
        else:
            raise AssertionError("the publish failure was swallowed")
        assert len(await store.events("lt-a")) > 0  # the decisions reached the store
        await plane.handle(batch)  # what consume_batches does: the same batch again
        inputs = [pb.NodeInput.FromString(m.value) for m in bus.published if "inputs" in m.topic]
        assert sorted(i.input_id for i in inputs) == ["lt-a.1", "lt-b.1"]
        # Once published, nothing is re-published by the next batch.
        bus.published.clear()
        await plane.handle([start_message(topics, "lt-c")])
        inputs = [pb.NodeInput.FromString(m.value) for m in bus.published if "inputs" in m.topic]
        assert [i.input_id for i in inputs] == ["lt-c.1"]
