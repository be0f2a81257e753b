"""Streamed partial output of a running Task (``ctx.emit``), published to watchers.

Each chunk becomes a ``LifetimeEvent`` of kind ``output`` on the events topic
(and, in one process, handed straight to the runtime's listeners), so
``tickrail run``, ``tickrail lifetimes watch`` and the API's watch show it
live. It is never appended to the log: the execution's result is the record,
and replay must not depend on progress messages. Publishing is best-effort for
the same reason: a chunk that cannot be published is logged, never fails the
Task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tickrail.adapters import Message
from tickrail.sdk._payload import encode
from tickrail.sdk._timestamps import stamp
from tickrail.sdk.context import OutputSink
from tickrail.sdk.pb import envelope_pb2 as pb

log = logging.getLogger("tickrail.executor")

Publish = Callable[[list[Message]], Awaitable[None]]
Observe = Callable[[list[Message]], None]


class OutputStream:
    """The outputs of one node input's attempts, in the order they were emitted.

    ``sink(exec_id)`` is what the attempt's ``ctx.emit`` calls, from the event
    loop or from a ``def`` Task's thread; chunks emitted meanwhile are
    coalesced into one publish. ``drain()`` waits until every chunk emitted so
    far is out, so watchers see the output before the execution's result.
    """

    def __init__(
        self,
        node_input: pb.NodeInput,
        topic: str,
        publish: Publish,
        observe: Observe | None = None,
    ) -> None:
        self.node_input = node_input
        self.topic = topic
        self._publish = publish
        self._observe = observe
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._pending: list[Message] = []
        self._flushing: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # emit may run in a worker thread
        self.emitted = 0

    def sink(self, exec_id: str) -> OutputSink:
        index = 0

        def emit(text: str | None, data: Any) -> None:
            nonlocal index
            with self._lock:
                position = index
                index += 1
                self.emitted += 1
            message = self._message(exec_id, position, text, data)
            if threading.get_ident() == self._loop_thread:
                self._add(message)
            else:
                self._loop.call_soon_threadsafe(self._add, message)

        return emit

    def _message(self, exec_id: str, index: int, text: str | None, data: Any) -> Message:
        node_input = self.node_input
        output = pb.NodeOutput(exec_id=exec_id, name=node_input.name, index=index)
        if text is not None:
            output.text = text
        else:
            output.data.CopyFrom(encode(data))
        event = pb.LifetimeEvent(
            event_id=f"{exec_id}.output.{index}",
            lifetime_id=node_input.lifetime_id,
            tenant_id=node_input.tenant_id,
            output=output,
        )
        stamp(event.created_at, time.time_ns())
        return Message(self.topic, node_input.lifetime_id, event.SerializeToString())

    def _add(self, message: Message) -> None:
        self._pending.append(message)
        if self._flushing is None or self._flushing.done():
            self._flushing = self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._publish(batch)
            except Exception:  # progress only: the result is still recorded
                log.warning(
                    "could not publish %d streamed output chunk(s) of lifetime %s",
                    len(batch),
                    self.node_input.lifetime_id,
                    exc_info=True,
                )
            if self._observe is not None:
                self._observe(batch)

    async def drain(self) -> None:
        if not self.emitted:
            # Nothing was emitted (emit counts before it schedules anything, and
            # a thread's emits happen before its node returns): no loop turn.
            return
        # Chunks a thread emitted just before returning were scheduled with
        # call_soon_threadsafe ahead of the thread's own completion, so they
        # are already queued; one pass of the loop lets them land.
        await asyncio.sleep(0)
        while self._flushing is not None and not self._flushing.done():
            await self._flushing
