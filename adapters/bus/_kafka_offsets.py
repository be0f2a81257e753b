"""What a consumer knows of each of its partitions: the offsets delivered and not
yet committed (which are done), and where it stands against the partition's end."""

from __future__ import annotations

from collections import deque

from aiokafka import AIOKafkaConsumer, TopicPartition


class PartitionOffsets:
    """Delivered offsets of one partition not yet committed, and which are done."""

    __slots__ = ("delivered", "done", "generation", "next_offset")

    def __init__(self, generation: tuple[int, str]) -> None:
        self.delivered: deque[int] = deque()
        self.done: set[int] = set()
        self.next_offset = -1  # after the last delivered record, for the lag metric
        # The group generation the records were delivered in: after a rejoin the
        # partition may be someone else's, or (a broker that lost its data) a
        # new partition with the same name, and these offsets must not commit.
        self.generation = generation

    def mark_done(self, offset: int) -> None:
        # Offsets below the window were committed already (a duplicate commit).
        if self.delivered and offset >= self.delivered[0]:
            self.done.add(offset)

    def advance(self) -> int | None:
        """The offset to commit (last contiguous done + 1), or None if no progress."""
        delivered, done = self.delivered, self.done
        last = None
        while delivered and delivered[0] in done:
            last = delivered.popleft()
            done.discard(last)
        return None if last is None else last + 1


def position_of(raw: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The member's fetch position in ``tp`` (None while it is being reset)."""
    assignment = getattr(getattr(raw, "_subscription", None), "subscription", None)
    state = getattr(getattr(assignment, "assignment", None), "state_value", lambda _tp: None)(tp)
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


def beyond_highwater(raw: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    highwater = raw.highwater(tp)
    position = position_of(raw, tp)
    return highwater is not None and position is not None and position > highwater
