"""Coalesce many concurrent awaits of one bus operation into few requests.

The executor runs every input as its own task, and each used to publish its
envelope and commit its input offset with one awaited bus request of its own:
with Kafka, 200 lifetimes meant hundreds of produce and offset-commit round
trips a second, each a request and a wake-up. A ``Batcher`` gathers what the
tasks hand it during a short linger (or until ``max_items``), runs the bus
operation once for all of it, and wakes every caller with the one outcome, so
each caller still returns only after its items were accepted (an error reaches
every caller of that batch) and nothing is acknowledged before it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

_T = TypeVar("_T")


class Batcher(Generic[_T]):
    """Calls ``flush`` with the items submitted within ``linger`` seconds of each other.

    ``linger=0`` flushes on the next turn of the event loop: it only gathers
    what became ready together, adding no wait.
    """

    def __init__(
        self,
        flush: Callable[[list[_T]], Awaitable[None]],
        *,
        linger: float = 0.0,
        max_items: int = 500,
    ) -> None:
        if linger < 0 or max_items < 1:
            raise ValueError("Batcher: linger must be >= 0 and max_items >= 1")
        self._flush, self.linger, self.max_items = flush, linger, max_items
        self._items: list[_T] = []
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.Handle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def submit(self, items: Sequence[_T]) -> None:
        """Return once ``items`` were flushed; raise what their flush raised."""
        if not items:
            return
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = loop.create_future()
            if self.linger > 0:
                self._timer = loop.call_later(self.linger, self._start_flush)
            else:
                self._timer = loop.call_soon(self._start_flush)
        done = self._done
        self._items.extend(items)
        if len(self._items) >= self.max_items:
            self._start_flush()
        # Shielded: a caller cancelled while waiting must not cancel the flush
        # that other callers' items ride on.
        await asyncio.shield(done)

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, done = self._items, self._done
        self._items, self._done = [], None
        if done is None:
            return
        task = asyncio.get_running_loop().create_task(self._run(items, done))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _run(self, items: list[_T], done: asyncio.Future[None]) -> None:
        try:
            await self._flush(items)
        except BaseException as exc:
            if not done.done():
                done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not done.done():
                done.set_result(None)
        finally:
            # Nobody may be waiting any more (every caller cancelled): do not
            # let the event loop report the exception as never retrieved.
            if done.done() and not done.cancelled():
                done.exception()

    async def drain(self) -> None:
        """Flush what is pending now and wait for every flush in flight."""
        if self._done is not None:
            self._start_flush()
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
