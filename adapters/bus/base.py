"""The EventBus contract: keyed, at-least-once topics with consumer groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self, runtime_checkable


@dataclass(frozen=True, slots=True)
class Message:
    """One message on a topic.

    ``key`` decides ordering: messages with the same key are delivered in the
    order they were published (tickrail keys everything by lifetime id).
    ``partition`` and ``offset`` are set by the bus on delivery.
    """

    topic: str
    key: str
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    partition: int = 0
    offset: int = -1


@runtime_checkable
class Consumer(Protocol):
    """A member of a consumer group reading some topics.

    Delivery is at-least-once: a message is redelivered (to this group) unless
    ``commit`` was called for it before the consumer closed or crashed. Call
    ``commit`` only after the message's effect is durable.
    """

    async def poll(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        """Wait up to ``timeout`` seconds for messages; return at most ``max_messages``."""
        ...

    async def commit(self, messages: Sequence[Message]) -> None:
        """Mark these delivered messages as done."""
        ...

    async def close(self) -> None:
        """Leave the group; uncommitted messages go back to the group. Idempotent."""
        ...


@runtime_checkable
class EventBus(Protocol):
    """Publishes to topics and hands out consumers. Chosen by URL scheme."""

    async def start(self) -> None:
        """Connect. Called once before any other method (``async with`` does it)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish a batch; returns once the bus has accepted every message durably."""
        ...

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the topics if missing (configured partitions). No-op where not needed."""
        ...

    async def subscribe(
        self, topics: Sequence[str], group: str, *, from_end: bool = False
    ) -> Consumer:
        """Join ``group`` reading ``topics``; return a ready consumer.

        A new group starts at the oldest retained message. With ``from_end``
        the consumer is a watcher: it reads every partition from the newest
        message on, by itself (``group`` only names it; ``commit`` does nothing),
        and receives everything published after this returns.
        """
        ...

    async def close(self) -> None:
        """Flush and disconnect. Idempotent; the bus cannot be used afterwards."""
        ...
