"""Kafka EventBus (``kafka://host:port[,host2:port2]``) on aiokafka.

Ordering: messages are keyed (tickrail keys by lifetime id), and aiokafka keeps
at most one batch in flight per partition, so a retried send cannot overtake a
later one. The idempotent producer is not used: aiokafka only speaks
InitProducerId v0, which brokers such as Tansu refuse.

Delivery is at-least-once. Offsets are committed by hand: a partition's offset
advances only past the longest run of delivered messages that are all done, so
a message finished early never lets an earlier unfinished one be skipped.

This module is the bus (producer, subscriptions) and the import path the
adapter registry names; its parts live beside it: ``_kafka_settings`` (URL
options), ``_kafka_calls`` (bounded aiokafka calls and their errors),
``_kafka_topics`` (creating and remembering topics), ``_kafka_consumer`` (a
group member and its rebalances) and ``_kafka_offsets`` (per-partition
bookkeeping).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from tickrail.sdk.errors import AdapterError

from .._lifecycle import Lifecycle
from ._kafka_calls import connect_within, kafka_error, stop_quietly, within
from ._kafka_consumer import KafkaConsumer
from ._kafka_partitioner import CachedHashPartitioner
from ._kafka_settings import FRAMING, KafkaSettings, parse_url
from ._kafka_topics import KafkaTopics
from .base import Consumer, Message, MessageSizeLimit

__all__ = ["KafkaBus", "KafkaConsumer", "KafkaSettings", "parse_url"]


class KafkaBus(Lifecycle, MessageSizeLimit):
    """``kafka://host:port[,host2:port2]?partitions=6&replication=1`` — Kafka via aiokafka.

    Options (URL query or keyword): ``partitions`` and ``replication`` for topics
    this bus creates; ``max_message_bytes`` (largest message, default 8 MiB);
    ``session_timeout_ms`` (6000) and ``heartbeat_interval_ms`` (500) for consumer
    groups; ``join_timeout`` (seconds ``subscribe`` waits for its partitions, 60);
    ``client_id``; ``linger_ms`` (producer batching, 0); ``compression_type``
    (gzip, lz4, zstd, snappy); ``fetch_max_wait_ms`` (5) and ``fetch_min_bytes``
    (1): how long a consumer's fetch waits at the broker for how much data,
    i.e. the latency of a hop against the requests an idle consumer makes;
    ``connect_timeout`` (seconds a producer or admin client may take to connect, 30);
    ``commit_timeout`` (seconds a commit may take before the member rejoins, 10);
    ``metadata_max_age_ms`` (how often topics are looked up again, 5000);
    ``fetch_idle_wait_ms`` (50) and ``fetch_idle_after_ms`` (60000): the fetch
    wait of a consumer that has seen no message for that long;
    ``fetch_batch_wait_ms`` (15) and ``fetch_batch_keys`` (16): the fetch wait
    grows towards the former as a consumer serves up to the latter many keys
    (lifetimes) a second (see ``_kafka_pacing``).

    Topics are created with the configured partitions on first use (publish or
    subscribe), so a broker's auto-create default never decides them.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.settings = parse_url(url, options)
        self._where = ",".join(self.settings.bootstrap)
        self._producer: AIOKafkaProducer | None = None
        self._topics = KafkaTopics(self.settings)
        self._consumers: set[KafkaConsumer] = set()
        # Groups whose next member must read from the start: the broker lost
        # the topics (a commit found them gone), so any offset the group may
        # still have committed points into data that no longer exists.
        self._rewind: set[str] = set()

    @property
    def max_message_bytes(self) -> int:
        """The ``max_message_bytes`` option (MessageSizeLimit)."""
        return self.settings.max_message_bytes

    async def _start(self) -> None:
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap,
            client_id=s.client_id,
            acks="all",
            enable_idempotence=False,
            max_request_size=s.max_message_bytes + FRAMING,
            linger_ms=s.linger_ms,
            compression_type=s.compression_type,
            metadata_max_age_ms=s.metadata_max_age_ms,
            partitioner=CachedHashPartitioner(),
        )
        await connect_within(
            s.connect_timeout,
            producer.start(),
            f"a Kafka producer to {self._where}",
            lambda: stop_quietly(producer),
        )
        self._producer = producer

    def lost(self, error: AdapterError) -> AdapterError:
        """After a failure, trust nothing cached about the broker: it may have
        restarted without its data, so topics are checked (and created) again."""
        if error.retriable:
            self.forget_topics()
        return error

    def forget_topics(self) -> None:
        """Look every topic up again before its next use (the broker may have lost it)."""
        self._topics.forget()

    def rewind_next_member(self, group: str) -> None:
        """The next member of ``group`` to join reads its partitions from the start."""
        self._rewind.add(group)

    def closed(self, consumer: KafkaConsumer) -> None:
        """``consumer`` left: closing the bus need not close it again."""
        self._consumers.discard(consumer)

    async def _close(self) -> None:
        await asyncio.gather(*(c.close() for c in list(self._consumers)), return_exceptions=True)
        try:
            if self._producer is not None:
                await self._producer.stop()  # flushes anything still queued
        except (KafkaError, OSError) as exc:
            raise kafka_error(f"cannot flush the Kafka producer to {self._where}", exc) from exc
        finally:
            self._producer = None
            await self._topics.close()

    def _live_producer(self) -> AIOKafkaProducer:
        self._check_open()
        if self._producer is None:
            raise AdapterError("KafkaBus used before start()")
        return self._producer

    async def publish(self, messages: Sequence[Message]) -> None:
        producer = self._live_producer()
        if not messages:
            return
        missing = {m.topic for m in messages} - self._topics.known
        if missing:
            await self.ensure_topics(sorted(missing))
        # Queue the whole batch first so aiokafka can pack it into few requests,
        # then wait for every acknowledgement (acks=all: replicated before it counts).
        futures: list[asyncio.Future[Any]] = []
        topics: list[str] = []
        failure: tuple[str, Exception] | None = None
        for m in messages:
            try:
                futures.append(
                    await producer.send(
                        m.topic,
                        m.value,
                        key=m.key.encode(),
                        headers=[(k, v.encode()) for k, v in m.headers.items()],
                    )
                )
                topics.append(m.topic)
            except (KafkaError, OSError) as exc:
                failure = (m.topic, exc)
                break
        results = await asyncio.gather(*futures, return_exceptions=True)
        if failure is None:
            for topic, result in zip(topics, results, strict=True):
                if isinstance(result, Exception):
                    failure = (topic, result)
                    break
                if isinstance(result, BaseException):
                    raise result
        if failure is not None:
            topic, cause = failure
            raise self.lost(
                kafka_error(f"cannot publish to Kafka topic {topic!r} on {self._where}", cause)
            ) from cause

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        self._check_open()
        try:
            await self._topics.ensure(topics)
        except AdapterError as exc:
            self.lost(exc)
            raise

    async def subscribe(
        self, topics: Sequence[str], group: str, *, from_end: bool = False
    ) -> Consumer:
        self._check_open()
        # Creating the topics first means the group's first assignment already
        # has their partitions, instead of after the next metadata refresh.
        await self.ensure_topics(topics)
        if from_end:
            return await self._watcher(topics, group)
        s = self.settings
        consumer = KafkaConsumer(self, group)
        raw = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            client_id=s.client_id,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_partition_fetch_bytes=s.max_message_bytes + FRAMING,
            fetch_max_bytes=max(50 * 1024 * 1024, s.max_message_bytes + FRAMING),
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            fetch_min_bytes=s.fetch_min_bytes,
            metadata_max_age_ms=s.metadata_max_age_ms,
            retry_backoff_ms=500,
        )
        raw.subscribe(list(topics), listener=consumer.listener)
        consumer.raw = raw
        what = f"Kafka group {group!r} on topics {list(topics)} at {self._where}"

        async def join() -> None:
            await raw.start()
            # The join runs in aiokafka's background task (records it fetches
            # meanwhile stay in its buffer); wait for it so a consumer returned
            # here owns its partitions and a publish right after is seen promptly.
            await consumer.listener.assigned.wait()
            if group in self._rewind:
                self._rewind.discard(group)
                consumer.rewind_on_assign = True
                assigned = raw.assignment()
                if assigned:
                    await raw.seek_to_beginning(*assigned)

        try:
            # Bounded as a whole: a broker that accepts connections and never
            # answers would otherwise keep start() waiting for ever.
            await within(s.join_timeout, join())
        except TimeoutError as exc:
            await consumer.abandon()
            raise self.lost(
                AdapterError(
                    f"{what}: no partition assignment within {s.join_timeout:.0f}s",
                    retriable=True,
                    dependency="kafka",
                )
            ) from exc
        except (KafkaError, OSError) as exc:
            await consumer.abandon()
            raise self.lost(kafka_error(f"cannot join {what}", exc)) from exc
        except BaseException:
            await consumer.abandon()
            raise
        self._consumers.add(consumer)
        return consumer

    async def _watcher(self, topics: Sequence[str], name: str) -> Consumer:
        """A reader of every partition from its end, outside any group: watchers
        need what is published from now on, and a group join would cost them
        seconds for nothing (they commit nothing; the store has the history)."""
        s = self.settings
        consumer = KafkaConsumer(self, name, grouped=False)
        raw = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            client_id=s.client_id,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=s.max_message_bytes + FRAMING,
            fetch_max_bytes=max(50 * 1024 * 1024, s.max_message_bytes + FRAMING),
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            fetch_min_bytes=s.fetch_min_bytes,
        )
        consumer.raw = raw
        what = f"Kafka watcher of {list(topics)} at {self._where}"
        try:
            async with asyncio.timeout(s.join_timeout):
                await raw.start()
                await raw.topics()  # metadata, so every partition is known
                partitions = [
                    TopicPartition(topic, number)
                    for topic in topics
                    for number in sorted(raw.partitions_for_topic(topic) or ())
                ]
                raw.assign(partitions)
                if partitions:
                    # Pinned before returning: whatever is published from now on arrives.
                    for partition, offset in (await raw.end_offsets(partitions)).items():
                        raw.seek(partition, offset)
        except TimeoutError as exc:
            await raw.stop()
            raise AdapterError(
                f"{what}: not ready within {s.join_timeout:.0f}s", retriable=True
            ) from exc
        except (KafkaError, OSError) as exc:
            await raw.stop()
            raise kafka_error(f"cannot start {what}", exc) from exc
        except BaseException:
            await raw.stop()
            raise
        self._consumers.add(consumer)
        return consumer
