"""The batch-consume loop the data plane and the control plane share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tickrail.adapters import Consumer, Message
from tickrail.services.metrics import Metrics


async def consume_batches(
    consumer: Consumer,
    handle: Callable[[list[Message]], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    batch_size: int,
    metrics: Metrics,
) -> None:
    """Poll, handle, commit, until ``stopping``; then finish what was already delivered.

    A batch is committed only after ``handle`` returned, i.e. after its effects
    are durable. Draining at the end means a clean stop redelivers nothing.
    The consumer is closed on the way out, whatever happens.
    """
    try:
        while not stopping.is_set():
            messages = await consumer.poll(batch_size, timeout=0.2)
            metrics.report_lag(consumer)
            if messages:
                await handle(messages)
                await consumer.commit(messages)
        while messages := await consumer.poll(batch_size, timeout=0):
            await handle(messages)
            await consumer.commit(messages)
    finally:
        await consumer.close()
