"""Calls into aiokafka made safe for a role: its errors as AdapterErrors that say
whether retrying can help, and every call bounded in time (a broker that accepts
connections and never answers must not hang a role)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IncompatibleBrokerVersion,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedVersionError,
)

from tickrail.sdk.errors import AdapterError

T = TypeVar("T")

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


def kafka_error(what: str, exc: Exception) -> AdapterError:
    retriable = not isinstance(exc, _PERMANENT) and isinstance(exc, KafkaError | OSError)
    detail = str(exc)
    name = type(exc).__name__
    if not detail.startswith(name):  # aiokafka errors already start with their name
        detail = f"{name}: {detail}"
    return AdapterError(f"{what}: {detail}", retriable=retriable, dependency="kafka")


# Calls that did not finish in time, kept referenced until they do (or never).
_ABANDONED: set[asyncio.Future[Any]] = set()


async def within(seconds: float, call: Awaitable[T]) -> T:
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


async def stop_within(client: AIOKafkaConsumer | AIOKafkaProducer, timeout: float) -> bool:
    """``client.stop()``, given up on after ``timeout`` s: True if it finished.

    aiokafka's consumer stop waits for its coordination task, which can be
    stuck retrying a coordinator that a restarted broker no longer has, and it
    does not always honour a cancellation; so the stop runs as its own task and
    is abandoned (not awaited) when it takes too long.
    """
    try:
        await within(timeout, client.stop())
    except TimeoutError:
        return False
    return True


async def stop_quietly(client: AIOKafkaConsumer | AIOKafkaProducer, timeout: float = 10) -> None:
    """Stop a client that failed to start; its own errors say nothing new."""
    try:
        await stop_within(client, timeout)
    except (KafkaError, OSError, TimeoutError):
        pass
    except asyncio.CancelledError:
        if cancelled():
            raise  # our own task is being cancelled, not only aiokafka's


def cancelled() -> bool:
    """Whether the running task itself is being cancelled (a CancelledError can
    also escape aiokafka from the cancellation of its own background tasks)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def connect_within(
    seconds: float,
    start: Awaitable[None],
    what: str,
    give_up: Callable[[], Awaitable[None]],
) -> None:
    """Start a client (``what``: "a Kafka producer to host:port") within ``seconds``.

    On any failure ``give_up`` releases the client, and the error says what could
    not connect: a timeout or a broker error as a retriable AdapterError (the
    broker may come back), anything else as it is.
    """
    try:
        await within(seconds, start)
    except TimeoutError as exc:
        await give_up()
        raise AdapterError(
            f"cannot connect {what}: no answer within {seconds:.0f}s",
            retriable=True,
            dependency="kafka",
        ) from exc
    except (KafkaError, OSError) as exc:
        await give_up()
        raise kafka_error(f"cannot connect {what}", exc) from exc
    except BaseException:
        await give_up()
        raise
