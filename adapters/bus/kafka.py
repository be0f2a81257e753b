"""Kafka EventBus (``kafka://host:port[,host2:port2]``) on aiokafka.

Ordering: messages are keyed (tickrail keys by lifetime id), and aiokafka keeps
at most one batch in flight per partition, so a retried send cannot overtake a
later one. The idempotent producer is not used: aiokafka only speaks
InitProducerId v0, which brokers such as Tansu refuse.

Delivery is at-least-once. Offsets are committed by hand: a partition's offset
advances only past the longest run of delivered messages that are all done, so
a message finished early never lets an earlier unfinished one be skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CommitFailedError,
    GroupAuthorizationFailedError,
    IncompatibleBrokerVersion,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
    for_code,
)
from aiokafka.util import commit_structure_validate

from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import AdapterError, ConfigurationError

from .._lifecycle import Lifecycle
from .base import Consumer, Message, MessageSizeLimit, RebalanceHooks, ReportsLag

T = TypeVar("T")

log = logging.getLogger("tickrail.bus.kafka")

# Record batch and request framing on top of the largest message value.
_FRAMING = 64 * 1024


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap: list[str]
    partitions: int = 6
    replication: int = 1
    max_message_bytes: int = 8 * 1024 * 1024
    # Tansu never completes a join below 6000 ms; a join takes half of it.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500
    join_timeout: float = 60.0
    # A broker that accepts connections and never answers must not hang a start.
    connect_timeout: float = 30.0
    # aiokafka retries a commit for ever while the broker answers "unknown
    # topic" (a broker that lost its data); past this the member rejoins.
    commit_timeout: float = 10.0
    # How often clients refresh metadata: a topic recreated after a broker lost
    # its data is noticed this soon (aiokafka's default is 5 minutes).
    metadata_max_age_ms: int = 5000
    client_id: str = "tickrail"
    linger_ms: int = 0
    compression_type: str | None = None
    # How long a fetch may wait at the broker for fetch_min_bytes. aiokafka's
    # 500 ms default is what each hop costs on a broker that does not answer a
    # waiting fetch as data arrives (Tansu): a hop took ~200 ms. bench/bus_hop.py
    # on the test broker (loaded 2-core machine): 5 ms -> hops p50 7-14 ms and
    # an idle consumer at ~5-6 % of a core; 20 ms -> ~3 %; 100 ms -> 25 ms hops
    # and ~1 %. 5 ms keeps the planner loop (three hops) in milliseconds; raise
    # it on the URL where idle consumers matter more than latency.
    fetch_max_wait_ms: int = 5
    fetch_min_bytes: int = 1


_INT_OPTIONS = {
    "partitions",
    "replication",
    "max_message_bytes",
    "session_timeout_ms",
    "heartbeat_interval_ms",
    "linger_ms",
    "fetch_max_wait_ms",
    "fetch_min_bytes",
    "metadata_max_age_ms",
}


def parse_url(url: str, options: Mapping[str, Any]) -> KafkaSettings:
    """Settings from the URL's query, overridden by keyword options."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ConfigurationError(
            f"Kafka URL must look like kafka://host:port[,host:port], got {redact_url(url)!r}"
        )
    bootstrap = []
    for hostport in parts.netloc.split(","):
        host, _, port = hostport.strip().rpartition(":")
        if not host:
            host, port = port, "9092"
        if not host or not port.isdigit():
            raise ConfigurationError(f"{redact_url(url)!r}: bad broker address {hostport!r}")
        bootstrap.append(f"{host}:{port}")
    raw: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    raw.update(options)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            if name in _INT_OPTIONS:
                values[name] = int(value)
            elif name in {"join_timeout", "connect_timeout", "commit_timeout"}:
                values[name] = float(value)
            elif name in {"client_id", "compression_type"}:
                values[name] = str(value)
            else:
                raise ConfigurationError(f"{redact_url(url)!r}: unknown Kafka option {name!r}")
        except ValueError as exc:
            raise ConfigurationError(
                f"{redact_url(url)!r}: option {name}={value!r} is not a number"
            ) from exc
    settings = KafkaSettings(bootstrap=bootstrap, **values)
    if settings.partitions < 1 or settings.replication < 1 or settings.max_message_bytes < 1:
        raise ConfigurationError(
            f"{redact_url(url)!r}: partitions, replication, max_message_bytes must be > 0"
        )
    if settings.fetch_max_wait_ms < 0 or settings.fetch_min_bytes < 1 or settings.linger_ms < 0:
        raise ConfigurationError(
            f"{redact_url(url)!r}: fetch_max_wait_ms and linger_ms must be >= 0,"
            " fetch_min_bytes >= 1"
        )
    return settings


# Errors that trying again cannot fix: configuration, permissions, a message
# too large. Every other broker error is taken as transient: a broker that just
# restarted answers UnknownError, UnknownTopicOrPartition or NotCoordinator
# until the topics and groups exist again.
_PERMANENT: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    UnsupportedVersionError,
    IncompatibleBrokerVersion,
)


def _error(what: str, exc: Exception) -> AdapterError:
    retriable = not isinstance(exc, _PERMANENT) and isinstance(exc, KafkaError | OSError)
    detail = str(exc)
    name = type(exc).__name__
    if not detail.startswith(name):  # aiokafka errors already start with their name
        detail = f"{name}: {detail}"
    return AdapterError(f"{what}: {detail}", retriable=retriable, dependency="kafka")


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
    ``metadata_max_age_ms`` (how often topics are looked up again, 5000).

    Topics are created with the configured partitions on first use (publish or
    subscribe), so a broker's auto-create default never decides them.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.settings = parse_url(url, options)
        self._where = ",".join(self.settings.bootstrap)
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._admin_lock = asyncio.Lock()
        self._known_topics: set[str] = set()
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
            max_request_size=s.max_message_bytes + _FRAMING,
            linger_ms=s.linger_ms,
            compression_type=s.compression_type,
            metadata_max_age_ms=s.metadata_max_age_ms,
        )
        try:
            await _within(s.connect_timeout, producer.start())
        except TimeoutError as exc:
            await _stop_quietly(producer)
            raise AdapterError(
                f"cannot connect a Kafka producer to {self._where}: no answer within "
                f"{s.connect_timeout:.0f}s",
                retriable=True,
                dependency="kafka",
            ) from exc
        except (KafkaError, OSError) as exc:
            await _stop_quietly(producer)
            raise _error(f"cannot connect a Kafka producer to {self._where}", exc) from exc
        except BaseException:
            await _stop_quietly(producer)
            raise
        self._producer = producer

    def _lost(self, error: AdapterError) -> AdapterError:
        """After a failure, trust nothing cached about the broker: it may have
        restarted without its data, so topics are checked (and created) again."""
        if error.retriable:
            self.forget_topics()
        return error

    def forget_topics(self) -> None:
        """Look every topic up again before its next use (the broker may have lost it)."""
        self._known_topics.clear()

    async def _close(self) -> None:
        await asyncio.gather(*(c.close() for c in list(self._consumers)), return_exceptions=True)
        try:
            if self._producer is not None:
                await self._producer.stop()  # flushes anything still queued
        except (KafkaError, OSError) as exc:
            raise _error(f"cannot flush the Kafka producer to {self._where}", exc) from exc
        finally:
            self._producer = None
            if self._admin is not None:
                await self._admin.close()
                self._admin = None

    def _live_producer(self) -> AIOKafkaProducer:
        self._check_open()
        if self._producer is None:
            raise AdapterError("KafkaBus used before start()")
        return self._producer

    async def publish(self, messages: Sequence[Message]) -> None:
        producer = self._live_producer()
        if not messages:
            return
        missing = {m.topic for m in messages} - self._known_topics
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
            raise self._lost(
                _error(f"cannot publish to Kafka topic {topic!r} on {self._where}", cause)
            ) from cause

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._admin_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.settings.bootstrap, client_id=self.settings.client_id
                )
                try:
                    await _within(self.settings.connect_timeout, admin.start())
                except TimeoutError as exc:
                    await admin.close()
                    raise AdapterError(
                        f"cannot connect a Kafka admin client to {self._where}: no answer "
                        f"within {self.settings.connect_timeout:.0f}s",
                        retriable=True,
                        dependency="kafka",
                    ) from exc
                except (KafkaError, OSError) as exc:
                    await admin.close()
                    raise _error(
                        f"cannot connect a Kafka admin client to {self._where}", exc
                    ) from exc
                self._admin = admin
            return self._admin

    async def _drop_admin(self) -> None:
        """A failed admin client is not reused: the next call connects afresh."""
        async with self._admin_lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await _within(self.settings.connect_timeout, admin.close())

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        self._check_open()
        wanted = [t for t in dict.fromkeys(topics) if t not in self._known_topics]
        if not wanted:
            return
        admin = await self._admin_client()
        s = self.settings
        topic_configs = {"max.message.bytes": str(s.max_message_bytes + _FRAMING)}
        try:
            # Only ask to create what is missing: a principal allowed to use
            # pre-provisioned topics may not be allowed to create any.
            existing = set(await _within(s.connect_timeout, admin.list_topics()))
            missing = [t for t in wanted if t not in existing]
            response = None
            if missing:
                response = await _within(
                    s.connect_timeout,
                    admin.create_topics(
                        [
                            NewTopic(t, s.partitions, s.replication, topic_configs=topic_configs)
                            for t in missing
                        ]
                    ),
                )
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._drop_admin()
            raise self._lost(
                _error(f"cannot create Kafka topics {wanted} on {self._where}", exc)
            ) from exc
        for topic_error in response.topic_errors if response is not None else ():
            topic, code = topic_error[0], topic_error[1]
            error_type = for_code(code)
            if code != 0 and error_type is not TopicAlreadyExistsError:
                cause = error_type(topic_error[2] if len(topic_error) > 2 else "")
                raise _error(f"cannot create Kafka topic {topic!r} on {self._where}", cause)
        self._known_topics.update(wanted)

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
            max_partition_fetch_bytes=s.max_message_bytes + _FRAMING,
            fetch_max_bytes=max(50 * 1024 * 1024, s.max_message_bytes + _FRAMING),
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
            await _within(s.join_timeout, join())
        except TimeoutError as exc:
            await _stop_quietly(raw)
            raise self._lost(
                AdapterError(
                    f"{what}: no partition assignment within {s.join_timeout:.0f}s",
                    retriable=True,
                    dependency="kafka",
                )
            ) from exc
        except (KafkaError, OSError) as exc:
            await _stop_quietly(raw)
            raise self._lost(_error(f"cannot join {what}", exc)) from exc
        except BaseException:
            await _stop_quietly(raw)
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
            max_partition_fetch_bytes=s.max_message_bytes + _FRAMING,
            fetch_max_bytes=max(50 * 1024 * 1024, s.max_message_bytes + _FRAMING),
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
            raise _error(f"cannot start {what}", exc) from exc
        except BaseException:
            await raw.stop()
            raise
        self._consumers.add(consumer)
        return consumer


# Calls that did not finish in time, kept referenced until they do (or never).
_ABANDONED: set[asyncio.Future[Any]] = set()


async def _within(seconds: float, call: Awaitable[T]) -> T:
    """Await ``call`` for at most ``seconds``, else raise TimeoutError.

    The call runs as its own task and is cancelled and abandoned (not awaited)
    when it takes too long: aiokafka does not always let a cancellation
    through (its stop waits for a coordination task that may be stuck on a
    coordinator a restarted broker no longer has), so ``asyncio.timeout``
    alone can wait for ever.
    """
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise TimeoutError(f"no answer within {seconds:.0f}s")
    return task.result()


def _abandon(task: asyncio.Future[Any]) -> None:
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)
    # Whatever it ends with was given up on: do not report it as never retrieved.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def _stop_within(client: AIOKafkaConsumer | AIOKafkaProducer, timeout: float) -> bool:
    """``client.stop()``, given up on after ``timeout`` s: True if it finished.

    aiokafka's consumer stop waits for its coordination task, which can be
    stuck retrying a coordinator that a restarted broker no longer has, and it
    does not always honour a cancellation; so the stop runs as its own task and
    is abandoned (not awaited) when it takes too long.
    """
    try:
        await _within(timeout, client.stop())
    except TimeoutError:
        return False
    return True


async def _stop_quietly(client: AIOKafkaConsumer | AIOKafkaProducer, timeout: float = 10) -> None:
    """Stop a client that failed to start; its own errors say nothing new."""
    try:
        await _stop_within(client, timeout)
    except (KafkaError, OSError, TimeoutError):
        pass
    except asyncio.CancelledError:
        if _cancelled():
            raise  # our own task is being cancelled, not only aiokafka's


def _cancelled() -> bool:
    """Whether the running task itself is being cancelled (a CancelledError can
    also escape aiokafka from the cancellation of its own background tasks)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Partition:
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


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self.assigned = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # A rebalance is also how a broker that restarted (maybe without its
        # data) first shows: trust no cached topic until it is looked up again,
        # or a publish could go to a topic the broker no longer has.
        self.consumer._bus.forget_topics()
        # The new owner resumes from the committed offset, so forget what this
        # member delivered; late commits for these partitions are skipped.
        for tp in revoked:
            self.consumer.partitions.pop(tp, None)
        if revoked:
            self.consumer.notify_rebalance()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.assigned.is_set() and assigned and self.consumer.rewind_on_assign:
            await self.consumer.raw.seek_to_beginning(*assigned)
        self.assigned.set()  # also when empty: more members than partitions
        if assigned:
            self.consumer.notify_rebalance()


def _position(raw: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The member's fetch position in ``tp`` (None while it is being reset)."""
    assignment = getattr(getattr(raw, "_subscription", None), "subscription", None)
    state = getattr(getattr(assignment, "assignment", None), "state_value", lambda _tp: None)(tp)
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


def _beyond_highwater(raw: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    highwater = raw.highwater(tp)
    position = _position(raw, tp)
    return highwater is not None and position is not None and position > highwater


def _leave_generation_zero(raw: AIOKafkaConsumer) -> None:
    """Make ``stop()`` send LeaveGroup even when the group is in generation 0.

    aiokafka 0.14 leaves only if ``generation > 0``, but Tansu numbers a
    group's first generation 0. Without LeaveGroup the broker keeps the gone
    member (as leader) until its session times out, and the next member's
    join stalls for about 11 s instead of 3. LeaveGroup carries no generation,
    so bumping it just before ``stop()`` (heartbeats stopped by then) is safe.
    """
    coordinator = getattr(raw, "_coordinator", None)
    leave = getattr(coordinator, "_maybe_leave_group", None)
    if coordinator is None or leave is None:
        return

    async def leave_even_generation_zero() -> None:
        if coordinator.generation == 0:
            coordinator.generation = 1
        await leave()

    coordinator._maybe_leave_group = leave_even_generation_zero


class KafkaConsumer(ReportsLag, RebalanceHooks):
    """One member of a consumer group; made by ``KafkaBus.subscribe``."""

    raw: AIOKafkaConsumer

    def __init__(self, bus: KafkaBus, group: str, *, grouped: bool = True) -> None:
        self._bus = bus
        self.group = group
        self.grouped = grouped  # False: a watcher outside any group (nothing to commit)
        self.listener = _Listener(self)
        self.partitions: dict[TopicPartition, _Partition] = {}
        self._closed = False
        #: read every partition assigned to this member from its start (set when
        #: it joined after the broker lost its data, until its first commit: the
        #: group's offsets are trustworthy again from then on)
        self.rewind_on_assign = False
        self._rebalance_listeners: list[Callable[[], None]] = []
        # When a partition standing below this member's position may next be
        # checked against the broker (see _rewind_recreated).
        self._next_shortness_check = 0.0

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
            if _cancelled():
                raise
            raise AdapterError(
                f"Kafka group {self.group!r}: the consumer stopped under us",
                retriable=True,
                dependency="kafka",
            ) from exc
        except (KafkaError, OSError) as exc:
            raise self._bus._lost(_error(f"cannot poll Kafka group {self.group!r}", exc)) from exc
        rewound = await self._rewind_recreated()
        out: list[Message] = []
        for tp, records in batches.items():
            if tp in rewound:
                continue  # read again from the partition's start
            track = self.partitions.get(tp)
            if track is None:
                track = self.partitions[tp] = _Partition(self._generation())
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
        """
        suspects = [tp for tp in self.raw.assignment() if _beyond_highwater(self.raw, tp)]
        now = time.monotonic()
        if not suspects or now < self._next_shortness_check:
            return set()
        self._next_shortness_check = now + 1.0
        try:
            ends = await _within(self._bus.settings.connect_timeout, self.raw.end_offsets(suspects))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self._bus._lost(
                _error(f"cannot read the end offsets of Kafka group {self.group!r}", exc)
            ) from exc
        shorter = {
            tp
            for tp in suspects
            if (position := _position(self.raw, tp)) is not None
            and tp in ends
            and position > ends[tp]
        }
        if not shorter:
            return set()
        log.warning(
            "Kafka group %r: %d partition(s) are shorter than this member's position "
            "(the broker lost them); reading them again from the start: %s",
            self.group,
            len(shorter),
            sorted(f"{tp.topic}[{tp.partition}]" for tp in shorter),
        )
        for tp in shorter:
            self.partitions.pop(tp, None)  # offsets delivered before the loss never commit
        await _within(self._bus.settings.connect_timeout, self.raw.seek_to_beginning(*shorter))
        self._bus.forget_topics()
        self.notify_rebalance()  # what the broker held is gone: recover from the store
        return shorter

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
        touched: dict[TopicPartition, _Partition] = {}
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
            await _within(self._bus.settings.commit_timeout, self._commit_once(offsets))
        except asyncio.CancelledError as exc:
            if _cancelled():
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
                self._bus._rewind.add(self.group)
            topics = sorted({tp.topic for tp in offsets})
            error = _error(
                f"cannot commit offsets of Kafka group {self.group!r} on {topics}"
                " (the messages will be delivered again)",
                exc,
            )
            # A rebalance or a lost group makes the commit fail: retriable, by
            # leaving and joining again (the consume loops do).
            error.retriable = True
            raise self._bus._lost(error) from exc
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

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._consumers.discard(self)
        self.partitions.clear()
        if self.grouped:
            _leave_generation_zero(self.raw)
        try:
            # No auto-commit: stopping commits nothing, so whatever was not
            # committed goes back to the group.
            if not await _stop_within(self.raw, self._bus.settings.connect_timeout):
                raise AdapterError(
                    f"Kafka group {self.group!r}: leaving did not finish within "
                    f"{self._bus.settings.connect_timeout:.0f}s (abandoned)",
                    retriable=True,
                    dependency="kafka",
                )
        except asyncio.CancelledError:
            if _cancelled():
                raise
        except (KafkaError, OSError, TimeoutError) as exc:
            raise _error(f"cannot leave Kafka group {self.group!r} cleanly", exc) from exc
