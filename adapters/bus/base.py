"""The EventBus contract: keyed, at-least-once topics with consumer groups."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


# ---- optional capabilities: an implementation declares them by subclassing ----
# Callers test with isinstance (never getattr), and the conformance suite runs
# each capability's tests against the implementations that declare it.


@runtime_checkable
class ReportsLag(Protocol):
    """A Consumer that can tell how far behind it is (the consumer_lag metric)."""

    def lag(self) -> int:
        """Messages on this member's topics (partitions) not delivered to it yet."""
        ...


@runtime_checkable
class RebalanceHooks(Protocol):
    """A Consumer whose partitions can move to another member of its group."""

    def on_rebalance(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this member's partitions change: a role that
        caches per-key state must drop it then."""
        ...


@runtime_checkable
class Wakeable(Protocol):
    """A Consumer whose waiting ``poll`` can be ended at once (a fast shutdown)."""

    def wakeup(self) -> None:
        """End a ``poll`` in progress now; it returns what it has, maybe nothing."""
        ...


@runtime_checkable
class MessageSizeLimit(Protocol):
    """An EventBus that refuses messages over a size (Kafka's ``max.message.bytes``)."""

    @property
    def max_message_bytes(self) -> int:
        """The largest message value, in bytes, that publish accepts and consumers fetch."""
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
