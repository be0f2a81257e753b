"""The consume loop commits handled offsets beside the loop, one commit at a time,
and a commit that fails makes the member rejoin (its messages come again)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tickrail.adapters import Message
from tickrail.sdk.errors import AdapterError
from tickrail.services.consume import consume_batches
from tickrail.services.metrics import Metrics
from tickrail.services.retry import Backoff


class ScriptedConsumer:
    """Delivers the batches it is given, one per poll; commits wait on ``release``."""

    def __init__(self, batches: list[list[Message]], *, fail_commits: int = 0) -> None:
        self.batches = batches
        self.committed: list[int] = []
        self.commits_in_flight = 0
        self.most_in_flight = 0
        self.fail_commits = fail_commits
        self.release = asyncio.Event()
        self.release.set()
        self.closed = False

    async def poll(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(0.001)
        return []

    async def commit(self, messages: Sequence[Message]) -> None:
        self.commits_in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.commits_in_flight)
        try:
            await self.release.wait()
            if self.fail_commits:
                self.fail_commits -= 1
                raise AdapterError("rebalanced", retriable=True, dependency="kafka")
            self.committed += [m.offset for m in messages]
        finally:
            self.commits_in_flight -= 1

    async def close(self) -> None:
        self.closed = True


def batch(*offsets: int) -> list[Message]:
    return [Message("t", "k", b"", offset=o) for o in offsets]


async def test_batches_are_handled_while_a_commit_is_in_flight() -> None:
    consumer = ScriptedConsumer([batch(0), batch(1), batch(2)])
    consumer.release.clear()  # the first commit hangs until every batch is handled
    stopping = asyncio.Event()
    handled: list[int] = []

    async def handle(messages: list[Message]) -> None:
        handled.extend(m.offset for m in messages)
        if len(handled) == 3:
            consumer.release.set()
            stopping.set()

    # Bounded only so that a loop awaiting its commit fails here instead of hanging.
    async with asyncio.timeout(30):
        await consume_batches(
            consumer, handle, stopping, batch_size=10, metrics=Metrics("t"), commit_interval=0
        )
    assert handled == [0, 1, 2]
    assert sorted(consumer.committed) == [0, 1, 2]  # the rest committed at the stop
    assert consumer.most_in_flight == 1
    assert consumer.closed


async def test_a_failed_commit_rejoins_and_the_messages_come_again() -> None:
    first = ScriptedConsumer([batch(0, 1)], fail_commits=1)
    second = ScriptedConsumer([batch(0, 1)])  # what the group hands out again
    stopping = asyncio.Event()
    handled: list[int] = []

    async def handle(messages: list[Message]) -> None:
        handled.extend(m.offset for m in messages)
        if len(handled) == 4:
            stopping.set()

    async def subscribe() -> ScriptedConsumer:
        return second

    await consume_batches(
        first,
        handle,
        stopping,
        batch_size=10,
        metrics=Metrics("t"),
        subscribe=subscribe,
        commit_interval=0,
        backoff=Backoff(initial=0.0),
    )
    assert handled == [0, 1, 0, 1]
    assert first.committed == [] and first.closed
    assert second.committed == [0, 1]
