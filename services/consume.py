"""The batch-consume loop the data plane and the control plane share."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from tickrail.adapters import Consumer, Message
from tickrail.sdk.errors import AdapterError
from tickrail.services.metrics import Metrics
from tickrail.services.retry import (
    DEFAULT_BACKOFF,
    Backoff,
    Health,
    Stopped,
    dependency_of,
    pause,
    retrying,
)

log = logging.getLogger("tickrail.consume")

Subscribe = Callable[[], Awaitable[Consumer]]
DeadLetter = Callable[[Message, str], Awaitable[None]]

#: How long handled offsets may wait to be committed together (seconds).
COMMIT_INTERVAL_S = 0.1


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark an abandoned task's failure as seen (asyncio logs unseen ones)."""
    if not task.cancelled():
        task.exception()


async def close_quietly(consumer: Consumer | None, timeout: float = 10.0) -> None:
    """Leave the group if the bus lets us; a broker that is gone cannot be told."""
    if consumer is None:
        return
    try:
        async with asyncio.timeout(timeout):
            await consumer.close()
    except (AdapterError, TimeoutError, OSError):
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # aiokafka can let the cancellation of its own background work escape
        # stop(); that must not end the role that only wanted to leave.


async def rejoin(
    subscribe: Subscribe,
    *,
    what: str,
    health: Health,
    stopping: asyncio.Event,
    on_rejoin: Callable[[], Awaitable[None]] | None = None,
) -> Consumer:
    """Join the group again (retrying while the bus is down), then run ``on_rejoin``."""
    consumer = await retrying(subscribe, what=f"{what}: joining", health=health, stopping=stopping)
    if on_rejoin is not None:
        try:
            await retrying(
                on_rejoin, what=f"{what}: after rejoining", health=health, stopping=stopping
            )
        except BaseException:
            await close_quietly(consumer)
            raise
    return consumer


async def consume_batches(
    consumer: Consumer,
    handle: Callable[[list[Message]], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    batch_size: int,
    metrics: Metrics,
    dead_letter: DeadLetter | None = None,
    health: Health | None = None,
    subscribe: Subscribe | None = None,
    on_rejoin: Callable[[], Awaitable[None]] | None = None,
    tick: Callable[[], Awaitable[None]] | None = None,
    what: str = "consumer",
    backoff: Backoff = DEFAULT_BACKOFF,
    commit_interval: float = COMMIT_INTERVAL_S,
) -> None:
    """Poll, handle, commit, until ``stopping``; then finish what was already delivered.

    A batch is committed only after ``handle`` returned, i.e. after its effects
    are durable; a retriable failure of ``handle`` retries the same batch (its
    effects are idempotent). A failed poll or commit (the broker went away, the
    group rebalanced) drops the consumer and, with ``subscribe``, joins again:
    uncommitted messages come back from the last committed offset. ``tick`` runs
    once per poll (work that must happen even when no message comes). Draining
    at the end means a clean stop redelivers nothing. The consumer is closed on
    the way out, whatever happens.

    With ``dead_letter``, a fault in our code that escapes ``handle`` (not an
    adapter error: those mean the store or bus, and the batch is retried) is
    isolated: the batch is handled again message by message (handlers are
    idempotent on exec and event ids), and a message that fails on its own is
    dead-lettered, so one message never stops the role.

    Offsets of handled batches are committed together, at most once per
    ``commit_interval`` (and always before a clean stop): a commit is a broker
    round trip, and one per batch was most of what a small batch cost. Waiting
    only widens what a crash redelivers, never what it loses. The commit runs
    beside the loop (one at a time), so batches keep being handled meanwhile;
    a failed commit is raised at the loop's next turn.
    """

    async def handle_safely(batch: list[Message]) -> None:
        try:
            await handle(batch)
        except AdapterError:
            raise
        except Exception as exc:
            if dead_letter is None:
                raise
            metrics.inc("errors_total")
            log.exception("a fault handling %d message(s); isolating them", len(batch))
            if len(batch) > 1:
                for message in batch:
                    await handle_safely([message])
            else:
                await dead_letter(batch[0], f"internal error: {type(exc).__name__}: {exc}"[:1000])

    health = health or Health()
    current: Consumer | None = consumer
    failures = 0
    # Handled (durable) but not yet committed; redelivered if the member leaves first.
    handled: list[Message] = []
    committed_at = time.monotonic()

    # The commit in flight, if any: it runs beside the loop, so a message that
    # arrives meanwhile is handled at once instead of after the commit's round
    # trip (each commit delayed the batch behind it; on a loaded machine that
    # was several ms every commit_interval, i.e. the tail of every hop). One at
    # a time, so offsets reach the broker in order.
    committing: asyncio.Task[None] | None = None

    def commit_soon() -> None:
        """Start committing what was handled, if due and none is in flight;
        raise what the last commit raised (the loop rejoins on it)."""
        nonlocal handled, committed_at, committing
        if committing is not None:
            if not committing.done():
                return
            finished, committing = committing, None
            finished.result()
        if not handled or time.monotonic() - committed_at < commit_interval:
            return
        assert current is not None
        done, handled = handled, []
        committed_at = time.monotonic()
        committing = asyncio.create_task(current.commit(done))

    async def settle(*, quietly: bool) -> None:
        """Wait for the commit in flight (its failure raised unless ``quietly``)."""
        nonlocal committing
        task, committing = committing, None
        if task is None:
            return
        if not quietly:
            await task
            return
        with contextlib.suppress(Exception):
            await task

    async def commit_now() -> None:
        nonlocal handled
        await settle(quietly=False)
        if handled:
            assert current is not None
            done, handled = handled, []
            await current.commit(done)

    try:
        while not stopping.is_set():
            try:
                if current is None:
                    assert subscribe is not None
                    current = await rejoin(
                        subscribe, what=what, health=health, stopping=stopping, on_rejoin=on_rejoin
                    )
                messages = await current.poll(batch_size, timeout=0.2)
                metrics.report_lag(current)
                if messages:
                    await retrying(
                        functools.partial(handle_safely, messages),
                        what=f"{what}: handling {len(messages)} message(s)",
                        health=health,
                        stopping=stopping,
                    )
                    handled += messages
                commit_soon()
                if tick is not None:
                    await retrying(tick, what=what, health=health, stopping=stopping)
                if failures:
                    health.recovered("kafka")
                failures = 0
            except AdapterError as exc:
                if not exc.retriable or subscribe is None:
                    raise
                # The offsets this member holds are suspect (rebalanced, or the
                # broker lost them): leave, and rejoin from the committed offsets.
                metrics.inc("errors_total")
                health.failing(dependency_of(exc), str(exc))
                delay = backoff.delay(failures)
                failures += 1
                log.warning("%s: %s; rejoining in %.1f s", what, exc, delay)
                await settle(quietly=True)  # on the member being left: its outcome is moot
                await close_quietly(current)
                current = None
                handled = []  # the group hands them out again
                await pause(stopping, delay)
        if current is not None:
            with contextlib.suppress(AdapterError):
                await commit_now()
                while messages := await current.poll(batch_size, timeout=0):
                    await handle_safely(messages)
                    await current.commit(messages)
    except Stopped:
        log.warning(
            "%s: stopped while a dependency was down; uncommitted work is redelivered", what
        )
    finally:
        if committing is not None:
            # Ended by an error or a cancellation: the member is closed under
            # the commit, whose outcome nobody needs (uncommitted is redelivered).
            committing.cancel()
            committing.add_done_callback(_retrieve)
        await close_quietly(current)
