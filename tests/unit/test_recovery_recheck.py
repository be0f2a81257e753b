"""After the consumer group changed (maybe a broker that lost its data), the control
plane re-dispatches every pending input at once, and later again those that were
re-dispatched and are still pending: a broker that restarted can lose or hide
what was published in its first moments, and no later message would bring it back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tickrail.adapters.store.memory import MemoryStore
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.control_plane.service import RECHECK_AFTER_S, ControlPlane
from tickrail.services.dispatch import DispatchSigner
from tickrail.services.topics import Topics

from .test_control_plane_retry import FlakyBus, start_message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def recorded_plane() -> AsyncIterator[tuple[ControlPlane, FlakyBus, Clock, Topics]]:
    """A control plane on a bus that records what it publishes, on a clock the test sets."""
    clock = Clock()
    topics = Topics()
    async with FlakyBus() as bus, MemoryStore() as store:
        bus.published = []
        plane = ControlPlane(bus, store, topics, signer=DispatchSigner(b"k" * 32))
        plane.monotonic = clock
        yield plane, bus, clock, topics


def dispatched(bus: FlakyBus) -> list[str]:
    ids = [pb.NodeInput.FromString(m.value).input_id for m in bus.published if "inputs" in m.topic]
    bus.published.clear()
    return sorted(ids)


async def test_inputs_still_pending_after_a_group_change_are_dispatched_again() -> None:
    async with recorded_plane() as (plane, bus, clock, topics):
        await plane.handle([start_message(topics, "lt-a"), start_message(topics, "lt-b")])
        assert dispatched(bus) == ["lt-a.1", "lt-b.1"]

        plane._rebalanced()  # what the consumer's rebalance hook calls
        await plane._tick()
        assert dispatched(bus) == ["lt-a.1", "lt-b.1"]  # at once, under the same ids
        await plane.handle([start_message(topics, "lt-c")])  # dispatched after the change
        assert dispatched(bus) == ["lt-c.1"]

        await plane._tick()
        assert dispatched(bus) == []  # not yet due
        clock.now += RECHECK_AFTER_S[0]
        await plane._tick()
        # What the first pass re-dispatched and is still pending; lt-c only went
        # out after the change, so it gets its own delay.
        assert dispatched(bus) == ["lt-a.1", "lt-b.1"]
        clock.now += RECHECK_AFTER_S[1]
        await plane._tick()
        assert dispatched(bus) == ["lt-a.1", "lt-b.1", "lt-c.1"]
        clock.now += RECHECK_AFTER_S[2]
        await plane._tick()
        assert dispatched(bus) == ["lt-a.1", "lt-b.1", "lt-c.1"]
        clock.now += 1000
        await plane._tick()
        assert dispatched(bus) == []  # a bounded number of passes


async def test_a_pass_that_repeats_nothing_still_lets_the_next_one_run() -> None:
    """An input dispatched after the group change may be the one a restarted broker
    hid: a pass with nothing to repeat must not end the follow-ups."""
    async with recorded_plane() as (plane, bus, clock, topics):
        plane._rebalanced()
        await plane._tick()  # nothing pending yet
        await plane.handle([start_message(topics, "lt-late")])
        assert dispatched(bus) == ["lt-late.1"]
        clock.now += RECHECK_AFTER_S[0]
        await plane._tick()
        assert dispatched(bus) == []  # it was not pending at the first pass
        clock.now += RECHECK_AFTER_S[1]
        await plane._tick()
        assert dispatched(bus) == ["lt-late.1"]


async def test_start_up_recovery_arms_no_recheck() -> None:
    async with recorded_plane() as (plane, bus, clock, topics):
        await plane.handle([start_message(topics, "lt-a")])
        dispatched(bus)
        plane.request_recovery()  # start-up: the store is read once, no follow-up
        await plane._tick()
        assert dispatched(bus) == ["lt-a.1"]
        clock.now += sum(RECHECK_AFTER_S)
        await plane._tick()
        assert dispatched(bus) == []
