"""A member of a Kafka consumer group (or a watcher outside any): polls, commits by
hand past the longest run of finished deliveries, follows rebalances, and reads
again a partition that the broker lost and created anew."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError, UnknownTopicOrPartitionError
from aiokafka.util import commit_structure_validate

from tickrail.sdk.errors import AdapterError

from ._kafka_calls import cancelled, kafka_error, stop_quietly, stop_within, within
from ._kafka_offsets import PartitionOffsets, beyond_highwater, position_of
from ._kafka_pacing import FetchPacing
from .base import Message, RebalanceHooks, ReportsLag

if TYPE_CHECKING:
    from .kafka import KafkaBus

log = logging.getLogger("tickrail.bus.kafka")

# Seconds to look a partition's end up, or rewind it, before rejoining instead.
_LOOKUP_TIMEOUT = 5.0
# Seconds between checks of partitions that stand below this member's position
# (doubling while the broker only serves records past its end, up to the cap).
_SHORTNESS_INTERVAL = 1.0
_SHORTNESS_INTERVAL_MAX = 8.0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self.assigned = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # aiokafka calls this as every (re)join begins: until the join
        # completes, this member may be elected the group's leader.
        self.consumer.joined = False
        # A rebalance is also how a broker that restarted (maybe without its
        # data) first shows: trust no cached topic until it is looked up again,
        # or a publish could go to a topic the broker no longer has.
        self.consumer._bus.forget_topics()
        # The new owner resumes from the committed offset, so forget what this
        # member delivered; late commits for these partitions are skipped.
        for tp in revoked:
            self.consumer.partitions.pop(tp, None)
            self.consumer.forget_shortness(tp)
        if revoked:
            self.consumer.notify_rebalance()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # aiokafka keeps the group's subscription only on the member that
        # computed the assignment: the leader.
        coordinator = getattr(self.consumer.raw, "_coordinator", None)
        if getattr(coordinator, "_group_subscription", None) is not None:
            self.consumer.led = True
        self.consumer.joined = True
        if self.assigned.is_set() and assigned and self.consumer.rewind_on_assign:
            await self.consumer.raw.seek_to_beginning(*assigned)
        self.assigned.set()  # also when empty: more members than partitions
        if assigned:
            self.consumer.notify_rebalance()


def leave_only_as_follower(consumer: KafkaConsumer) -> None:
    """Make ``stop()`` send LeaveGroup only from a member that is a follower
    with its join complete; any other member leaves by its session timing out.

    Tansu (0.6) keeps a leader that leaves while its group is forming (a
    member joined or left, the leader has not synced yet) as the group's
    leader for ever: every later member is told to wait for that leader's
    assignment, which never comes, so the group never gets an assignment
    again (seen after a broker restart with two executors in one group: both
    retried their join for ever). A member that times out is dropped as
    leader too, so a new one is elected. A follower leaving is safe (and
    prompt: its partitions go to the others at once), also in generation 0,
    which is Tansu's first: aiokafka leaves only if the generation is above
    0, so that is raised just before (LeaveGroup carries no generation).
    """
    coordinator = getattr(consumer.raw, "_coordinator", None)
    leave = getattr(coordinator, "_maybe_leave_group", None)
    if coordinator is None or leave is None:
        return

    async def leave_if_follower() -> None:
        if consumer.led or not consumer.joined:
            coordinator.reset_generation()  # what leaving does, minus the request
            return
        if coordinator.generation == 0:
            coordinator.generation = 1
        await leave()

    coordinator._maybe_leave_group = leave_if_follower


class KafkaConsumer(ReportsLag, RebalanceHooks):
    """One member of a consumer group; made by ``KafkaBus.subscribe``."""

    raw: AIOKafkaConsumer

    def __init__(self, bus: KafkaBus, group: str, *, grouped: bool = True) -> None:
        self._bus = bus
        self.group = group
        self.grouped = grouped  # False: a watcher outside any group (nothing to commit)
        self.listener = _Listener(self)
        self.partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._closed = False
        #: whether this member was ever elected its group's leader, and whether
        #: its last join completed (see leave_only_as_follower)
        self.led = False
        self.joined = False
        #: read every partition assigned to this member from its start (set when
        #: it joined after the broker lost its data, until its first commit: the
        #: group's offsets are trustworthy again from then on)
        self.rewind_on_assign = False
        self._rebalance_listeners: list[Callable[[], None]] = []
        # When a partition standing below this member's position may next be
        # checked against the broker, and how long until the check after
        # (see _rewind_recreated).
        self._next_shortness_check = 0.0
        self._shortness_interval = _SHORTNESS_INTERVAL
        # The end offset and the high watermark (Tansu's can disagree) each
        # partition had when it was last found shorter than this member's
        # position, until it grew past that consistently.
        self._short_ends: dict[TopicPartition, tuple[int, int]] = {}
        self._pacing = FetchPacing(bus.settings)

    def _grew_past_shortness(self, tp: TopicPartition) -> bool:
        """Whether ``tp``, once found shorter, now reads consistently past the
        end it had then (its hidden records may come one batch at a time)."""
        short, highwater = self._short_ends.get(tp), self.raw.highwater(tp)
        if short is None or highwater is None or highwater <= short[1]:
            return False
        return not beyond_highwater(self.raw, tp)

    def forget_shortness(self, tp: TopicPartition) -> None:
        """``tp`` left this member: whoever reads it next judges it afresh."""
        self._short_ends.pop(tp, None)

    def on_rebalance(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this member's partitions change (optional
        capability: a role that caches per-key state must drop it then)."""
        self._rebalance_listeners.append(callback)

    def notify_rebalance(self) -> None:
        for callback in self._rebalance_listeners:
            callback()

    async def poll(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        if self._closed:
            return []
        self._bus._check_open()
        try:
            batches = await self.raw.getmany(
                timeout_ms=max(0, int(timeout * 1000)), max_records=max_messages
            )
        except asyncio.CancelledError as exc:
            if cancelled():
                raise
            raise AdapterError(
                f"Kafka group {self.group!r}: the consumer stopped under us",
                retriable=True,
                dependency="kafka",
            ) from exc
        except (KafkaError, OSError) as exc:
            raise self._bus.lost(
                kafka_error(f"cannot poll Kafka group {self.group!r}", exc)
            ) from exc
        rewound = await self._rewind_recreated()
        out: list[Message] = []
        for tp, records in batches.items():
            if tp in rewound:
                continue  # read again from the partition's start
            track = self.partitions.get(tp)
            if track is None:
                track = self.partitions[tp] = PartitionOffsets(self._generation())
            for r in records:
                track.delivered.append(r.offset)
                track.next_offset = r.offset + 1
                out.append(
                    Message(
                        topic=r.topic,
                        key=r.key.decode(errors="replace") if r.key is not None else "",
                        value=r.value if r.value is not None else b"",
                        headers={k: v.decode(errors="replace") for k, v in r.headers},
                        partition=r.partition,
                        offset=r.offset,
                    )
                )
            if self._grew_past_shortness(tp):
                del self._short_ends[tp]
        self._pacing.after_poll(self.raw, out)
        return out

    async def _rewind_recreated(self) -> set[TopicPartition]:
        """Read again from its start every partition that is now shorter than
        where this member stands in it: the broker lost it and it was created
        anew (a broker without durable storage that restarted). Returns them.

        A Kafka answers a fetch past a partition's end with OffsetOutOfRange,
        and aiokafka then resets to the earliest offset (auto_offset_reset).
        A broker that answers such a fetch with nothing instead (Tansu) leaves
        the member waiting below every message published since, and skipping
        them once the partition grows past its position. The same holds for a
        position taken from an offset committed before the loss. The cheap
        sign (the position above the last fetch's high watermark) is confirmed
        against the partition's end offset, at most once a second, because a
        high watermark can lag for a moment after a leader change.

        A position beyond the end is not always a loss: right after a restart
        Tansu can serve records past the end offset it reports (a produce that
        failed with AlreadyExists), and reading such a partition again from
        its start ends beyond its end again, every time, re-delivering it for
        ever. So a partition already found shorter is read again only if its
        end went down since (it was lost again); otherwise the check backs off
        until the partition reads consistently again.
        """
        suspects = [tp for tp in self.raw.assignment() if beyond_highwater(self.raw, tp)]
        now = time.monotonic()
        if not suspects:
            self._shortness_interval = _SHORTNESS_INTERVAL
            return set()
        if now < self._next_shortness_check:
            return set()
        self._next_shortness_check = now + self._shortness_interval
        # aiokafka waits for a leader of each partition: a topic the broker no
        # longer has has none, and rejoining (which creates it) is what helps.
        bound = min(_LOOKUP_TIMEOUT, self._bus.settings.connect_timeout)
        try:
            ends = await within(bound, self.raw.end_offsets(suspects))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self._bus.lost(
                kafka_error(f"cannot read the end offsets of Kafka group {self.group!r}", exc)
            ) from exc
        shorter = {
            tp
            for tp in suspects
            if (position := position_of(self.raw, tp)) is not None
            and tp in ends
            and position > ends[tp]
        }
        # Lost: first found shorter, or shorter than when last found so.
        lost = {tp for tp in shorter if ends[tp] < self._short_ends.get(tp, (ends[tp] + 1, 0))[0]}
        self._short_ends.update({tp: (ends[tp], self.raw.highwater(tp) or 0) for tp in shorter})
        if shorter and not lost:  # only a broker that serves past its end: wait
            self._shortness_interval = min(_SHORTNESS_INTERVAL_MAX, 2 * self._shortness_interval)
        else:
            self._shortness_interval = _SHORTNESS_INTERVAL
        if not lost:
            return set()
        log.warning(
            "Kafka group %r: %d partition(s) are shorter than this member's position "
            "(the broker lost them); reading them again from the start: %s",
            self.group,
            len(lost),
            sorted(
                f"{tp.topic}[{tp.partition}] at {position_of(self.raw, tp)} > end {ends[tp]}"
                for tp in lost
            ),
        )
        for tp in lost:
            self.partitions.pop(tp, None)  # offsets delivered before the loss never commit
        try:
            await within(bound, self.raw.seek_to_beginning(*lost))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self._bus.lost(
                kafka_error(f"cannot rewind Kafka group {self.group!r}", exc)
            ) from exc
        self._bus.forget_topics()
        self.notify_rebalance()  # what the broker held is gone: recover from the store
        return lost

    def lag(self) -> int:
        """Messages on this member's partitions not yet delivered (for the
        consumer_lag metric): the high watermark from the last fetch minus the
        next offset to deliver."""
        total = 0
        for tp in self.raw.assignment():
            highwater = self.raw.highwater(tp)
            track = self.partitions.get(tp)
            if highwater is None or track is None or track.next_offset < 0:
                continue
            total += max(0, highwater - track.next_offset)
        return total

    async def commit(self, messages: Sequence[Message]) -> None:
        if self._closed or not messages or not self.grouped:
            return
        touched: dict[TopicPartition, PartitionOffsets] = {}
        generation = self._generation()
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            track = self.partitions.get(tp)
            if track is None or track.generation != generation:
                continue  # revoked since delivery: its new owner redelivers it
            track.mark_done(m.offset)
            touched[tp] = track
        offsets = {tp: off for tp, track in touched.items() if (off := track.advance()) is not None}
        if not offsets:
            return
        try:
            await within(self._bus.settings.commit_timeout, self._commit_once(offsets))
        except asyncio.CancelledError as exc:
            if cancelled():
                raise
            raise AdapterError(
                f"cannot commit offsets of Kafka group {self.group!r}: the consumer stopped",
                retriable=True,
                dependency="kafka",
            ) from exc
        except (KafkaError, OSError, TimeoutError) as exc:
            if isinstance(exc, UnknownTopicOrPartitionError):
                # The topic is gone: the broker lost its data. Whoever joins
                # this group next starts from the beginning of the new topics.
                self._bus.rewind_next_member(self.group)
            topics = sorted({tp.topic for tp in offsets})
            error = kafka_error(
                f"cannot commit offsets of Kafka group {self.group!r} on {topics}"
                " (the messages will be delivered again)",
                exc,
            )
            # A rebalance or a lost group makes the commit fail: retriable, by
            # leaving and joining again (the consume loops do).
            error.retriable = True
            raise self._bus.lost(error) from exc
        self.rewind_on_assign = False

    def _generation(self) -> tuple[int, str]:
        """Which membership delivered a record: the generation and the member id
        (a broker that restarted numbers generations from 0 again, but hands
        out new member ids)."""
        coordinator = getattr(self.raw, "_coordinator", None)
        generation = int(getattr(coordinator, "generation", 0) or 0)
        return generation, str(getattr(coordinator, "member_id", "") or "")

    async def _commit_once(self, offsets: dict[TopicPartition, int]) -> None:
        """One commit request, its failure raised. aiokafka's own ``commit``
        retries for ever, re-reading the member id each time, so after the
        broker lost its data (and the member rejoined) a commit begun before it
        would land on the recreated topic with offsets that skip its messages."""
        coordinator = getattr(self.raw, "_coordinator", None)
        subscription = getattr(getattr(self.raw, "_subscription", None), "subscription", None)
        assignment = getattr(subscription, "assignment", None)
        commit = getattr(coordinator, "_do_commit_offsets", None)
        if coordinator is None or commit is None or assignment is None:
            await self.raw.commit(offsets)  # another aiokafka: its own commit
            return
        if any(tp not in assignment.tps for tp in offsets):
            raise CommitFailedError("partitions were reassigned since delivery")
        await coordinator.ensure_coordinator_known()
        async with coordinator._commit_lock:
            await commit(assignment, commit_structure_validate(offsets))

    async def abandon(self) -> None:
        """Stop a member whose join failed (it never became this bus's consumer)."""
        leave_only_as_follower(self)
        await stop_quietly(self.raw)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus.closed(self)
        self.partitions.clear()
        if self.grouped:
            leave_only_as_follower(self)
        try:
            # No auto-commit: stopping commits nothing, so whatever was not
            # committed goes back to the group.
            if not await stop_within(self.raw, self._bus.settings.connect_timeout):
                raise AdapterError(
                    f"Kafka group {self.group!r}: leaving did not finish within "
                    f"{self._bus.settings.connect_timeout:.0f}s (abandoned)",
                    retriable=True,
                    dependency="kafka",
                )
        except asyncio.CancelledError:
            if cancelled():
                raise
        except (KafkaError, OSError, TimeoutError) as exc:
            raise kafka_error(f"cannot leave Kafka group {self.group!r} cleanly", exc) from exc
