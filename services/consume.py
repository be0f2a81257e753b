"""The batch-consume loop the data plane and the control plane share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tickrail.adapters import Consumer, Message
from tickrail.sdk.errors import AdapterError
from tickrail.services.metrics import Metrics

log = logging.getLogger("tickrail.consume")
DeadLetter = Callable[[Message, str], Awaitable[None]]


async def consume_batches(
    consumer: Consumer,
    handle: Callable[[list[Message]], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    batch_size: int,
    metrics: Metrics,
    dead_letter: DeadLetter | None = None,
) -> None:
    """Poll, handle, commit, until ``stopping``; then finish what was already delivered.

    A batch is committed only after ``handle`` returned, i.e. after its effects
    are durable. Draining at the end means a clean stop redelivers nothing.
    The consumer is closed on the way out, whatever happens.

    With ``dead_letter``, a fault in our code that escapes ``handle`` (not an
    adapter error: those mean the store or bus, and the batch is retried) is
    isolated: the batch is handled again message by message (handlers are
    idempotent on exec and event ids), and a message that fails on its own is
    dead-lettered, so one message never stops the role.
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

    try:
        while not stopping.is_set():
            messages = await consumer.poll(batch_size, timeout=0.2)
            metrics.report_lag(consumer)
            if messages:
                await handle_safely(messages)
                await consumer.commit(messages)
        while messages := await consumer.poll(batch_size, timeout=0):
            await handle_safely(messages)
            await consumer.commit(messages)
    finally:
        await consumer.close()
