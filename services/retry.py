"""Ride out outages: one retry helper every role loop uses, and the health it reports.

A retriable ``AdapterError`` (a dropped or refused connection, a timeout, a
Kafka rebalance or commit failure, S3 throttling) never ends a role: the
operation is tried again with capped exponential backoff and full jitter,
after an optional reconnect step, until it succeeds or the role is asked to
stop. Anything else (bad configuration, a schema newer than the code) is
raised at once and ends the role with its message.

While an operation is being retried its dependency is marked down in
``Health``: ``/readyz`` names it, ``tickrail_retries_total`` counts the
retries (``tickrail_dependency_up`` is 0 meanwhile), and the log says what
is retried once per backoff step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tickrail.sdk.errors import AdapterError
from tickrail.services import metrics

log = logging.getLogger("tickrail.retry")

T = TypeVar("T")


class Stopped(Exception):
    """The role was asked to stop while an operation was being retried."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter (AWS architecture blog's
    "full jitter"): many processes retrying one dependency spread out instead
    of hammering it in lockstep when it returns."""

    initial: float = 0.2
    maximum: float = 5.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        cap = min(self.maximum, self.initial * self.factor ** min(attempt, 30))
        return random.uniform(cap / 2, cap)


@dataclass
class Health:
    """Which dependencies a process is waiting for, and how often it retried each."""

    down: dict[str, str] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)

    def failing(self, dependency: str, reason: str) -> None:
        self.down[dependency] = reason
        self.since.setdefault(dependency, time.monotonic())
        self.retries[dependency] = self.retries.get(dependency, 0) + 1
        metrics.retries.labels(dependency=dependency).inc()
        metrics.dependency_up.labels(dependency=dependency).set(0)

    def recovered(self, dependency: str) -> float:
        """Mark ``dependency`` up again; returns for how long it was down (seconds)."""
        self.down.pop(dependency, None)
        metrics.dependency_up.labels(dependency=dependency).set(1)
        started = self.since.pop(dependency, None)
        return 0.0 if started is None else time.monotonic() - started

    def not_ready(self) -> str:
        """Why the process is not ready ('' when every dependency answers)."""
        return "; ".join(f"waiting for {dep}: {why}" for dep, why in sorted(self.down.items()))


DEFAULT_BACKOFF = Backoff()


def dependency_of(exc: AdapterError) -> str:
    return exc.dependency or "unknown"


async def pause(stopping: asyncio.Event | None, seconds: float) -> None:
    """Sleep ``seconds``; raise Stopped at once if ``stopping`` is set meanwhile."""
    if stopping is None:
        await asyncio.sleep(seconds)
        return
    if stopping.is_set():
        raise Stopped
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
    if stopping.is_set():
        raise Stopped


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    health: Health,
    stopping: asyncio.Event | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
    reconnect: Callable[[AdapterError], Awaitable[None]] | None = None,
) -> T:
    """Run ``operation`` until it succeeds, retrying retriable AdapterErrors.

    ``reconnect`` runs after a failure, before the next try (e.g. rejoin a
    consumer group); its own retriable failures count as another failed try.
    Raises Stopped when ``stopping`` is set while waiting, and any
    non-retriable error as it is.
    """
    attempt = 0
    failed: set[str] = set()
    last: AdapterError | None = None
    while True:
        try:
            if last is not None and reconnect is not None:
                await reconnect(last)
            result = await operation()
        except AdapterError as exc:
            if not exc.retriable:
                raise
            last = exc
            dependency = dependency_of(exc)
            failed.add(dependency)
            health.failing(dependency, str(exc))
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("%s: %s; retry %d in %.1f s", what, exc, attempt, delay)
            await pause(stopping, delay)
            continue
        for dependency in failed:
            down_for = health.recovered(dependency)
            log.warning(
                "%s: %s answers again after %d retries (%.1f s)",
                what,
                dependency,
                attempt,
                down_for,
            )
        return result
