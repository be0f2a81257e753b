"""In-process EventBus: the embedded and test profiles' bus.

Each consumer group has one queue fed by every topic the group reads. A
message delivered by ``poll`` stays in flight until committed; closing a
consumer puts its uncommitted messages back at the front of the group's
queue, which is what a crash before commit looks like on Kafka.

A group that joins late first receives the topic's retained backlog (the last
``retain`` messages), like a new Kafka group reading from the earliest offset.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any

from .._lifecycle import Lifecycle
from .base import Consumer, Message, ReportsLag, Wakeable


class _GroupQueue:
    __slots__ = ("pending", "timer", "timer_loop", "topics", "waiters")

    def __init__(self) -> None:
        self.pending: deque[Message] = deque()
        self.topics: set[str] = set()
        self.waiters: list[asyncio.Future[None]] = []
        self.timer: asyncio.TimerHandle | None = None  # ends the waits due first
        self.timer_loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on

    def push(self, message: Message) -> None:
        self.pending.append(message)
        self.wake()

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until a message comes or ``timeout`` s pass; maybe sooner (pollers
        then find nothing and poll again, as after a wakeup)."""
        # A bare future, and one timer shared by consecutive waits: a busy
        # consumer polls once per step, and arming and cancelling a timer for
        # each poll cost more than the rest of the wait. A timer due no later
        # than this wait's deadline serves it; only a later one is replaced.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiters.append(waiter)
        timer = self.timer
        deadline = loop.time() + timeout
        if timer is None or timer.when() > deadline or self.timer_loop is not loop:
            if timer is not None:
                timer.cancel()
            self.timer, self.timer_loop = loop.call_at(deadline, self._expire), loop
        await waiter

    def _expire(self) -> None:
        self.timer = None
        self.wake()


class MemoryBus(Lifecycle):
    """``memory://`` — topics live in this process only.

    Options: ``retain`` (messages kept per topic for groups that join later,
    default 10,000).
    """

    def __init__(self, url: str = "memory://", *, retain: int = 10_000, **_: Any) -> None:
        self.url = url
        self._groups: dict[str, _GroupQueue] = {}
        self._readers: dict[str, list[_GroupQueue]] = {}
        self._backlog: dict[str, deque[Message]] = {}
        self._offsets = itertools.count()
        self._retain = retain

    async def publish(self, messages: Sequence[Message]) -> None:
        self._check_open()
        offsets = self._offsets
        for m in messages:
            delivered = Message(m.topic, m.key, m.value, m.headers, 0, next(offsets))
            backlog = self._backlog.get(m.topic)
            if backlog is None:
                backlog = self._backlog[m.topic] = deque(maxlen=self._retain)
            backlog.append(delivered)
            for queue in self._readers.get(m.topic, ()):
                queue.push(delivered)

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        self._check_open()

    async def subscribe(
        self, topics: Sequence[str], group: str, *, from_end: bool = False
    ) -> Consumer:
        self._check_open()
        queue = self._groups.get(group)
        if queue is None:
            queue = self._groups[group] = _GroupQueue()
        for topic in topics:
            if topic in queue.topics:
                continue
            queue.topics.add(topic)
            self._readers.setdefault(topic, []).append(queue)
            for message in () if from_end else self._backlog.get(topic, ()):
                queue.push(message)
        return MemoryConsumer(self, queue)

    async def _close(self) -> None:
        for queue in self._groups.values():
            queue.wake()  # pollers notice the close


class MemoryConsumer(ReportsLag, Wakeable):
    def __init__(self, bus: MemoryBus, queue: _GroupQueue) -> None:
        self._bus = bus
        self._queue = queue
        self._in_flight: dict[int, Message] = {}
        self._closed = False

    async def poll(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        if self._closed:
            return []
        self._bus._check_open()
        queue = self._queue
        if not queue.pending:
            await queue.wait(timeout)
        batch: list[Message] = []
        pending, in_flight = queue.pending, self._in_flight
        while pending and len(batch) < max_messages:
            message = pending.popleft()
            in_flight[message.offset] = message
            batch.append(message)
        return batch

    def lag(self) -> int:
        """Messages waiting for this group (for the consumer_lag metric)."""
        return len(self._queue.pending)

    def wakeup(self) -> None:
        """End a waiting ``poll`` now (it returns what it has, maybe nothing)."""
        self._queue.wake()

    async def commit(self, messages: Sequence[Message]) -> None:
        in_flight = self._in_flight
        for message in messages:
            in_flight.pop(message.offset, None)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Uncommitted work goes back to the group, oldest first.
        for offset in sorted(self._in_flight, reverse=True):
            self._queue.pending.appendleft(self._in_flight[offset])
        if self._in_flight:
            self._queue.wake()
        self._in_flight.clear()
