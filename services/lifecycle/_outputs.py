"""Streamed output for watchers: kept from a lifetime's start until its watch attaches,
and merged in time order with the recorded events.

Output events (``ctx.emit``) are never stored, so a watcher only has what its
process hears. A fast Task can stream before the starter's watch is listening
(the start waits for the control plane to record it, and the executor may be
done by then); ``EarlyOutputs`` listens from the start on and hands what it
heard to the first watch, or drops it after ``KEEP_S`` seconds unwatched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence

from tickrail.adapters import EventRecord
from tickrail.sdk.pb import envelope_pb2 as pb

KEEP_S = 30.0  # how long start-time output waits for a watcher
MAX_KEPT = 10_000  # per lifetime, so an unwatched chatty Task cannot grow memory


class EarlyOutputs:
    def __init__(
        self, listen: Callable[[str, Callable[[pb.LifetimeEvent], None]], Callable[[], None]]
    ) -> None:
        self._listen = listen
        self._kept: dict[str, tuple[list[pb.LifetimeEvent], Callable[[], None]]] = {}

    def collect(self, lifetime_id: str) -> None:
        """Keep the lifetime's output events from now until ``take`` or ``KEEP_S``."""
        if lifetime_id in self._kept:
            return
        kept: list[pb.LifetimeEvent] = []

        def heard(event: pb.LifetimeEvent) -> None:
            if event.WhichOneof("kind") == "output" and len(kept) < MAX_KEPT:
                kept.append(event)

        self._kept[lifetime_id] = (kept, self._listen(lifetime_id, heard))
        asyncio.get_running_loop().call_later(KEEP_S, self._drop, lifetime_id, kept)

    def take(self, lifetime_id: str) -> list[pb.LifetimeEvent]:
        """What was heard since ``collect`` (once); stops listening for it."""
        found = self._kept.pop(lifetime_id, None)
        if found is None:
            return []
        kept, stop = found
        stop()
        return kept

    def _drop(self, lifetime_id: str, kept: list[pb.LifetimeEvent]) -> None:
        found = self._kept.get(lifetime_id)
        if found is not None and found[0] is kept:
            self.take(lifetime_id)


def merged(
    outputs: Sequence[pb.LifetimeEvent], records: Sequence[EventRecord]
) -> Iterator[tuple[pb.LifetimeEvent | None, EventRecord | None]]:
    """Records in their recorded order, each output placed before the first record
    made after it (a Task streams before its execution is decided on)."""
    i = 0
    for record in records:
        while i < len(outputs) and _time(outputs[i]) < record.created_at:
            yield outputs[i], None
            i += 1
        yield None, record
    for output in outputs[i:]:
        yield output, None


def _time(event: pb.LifetimeEvent) -> float:
    return float(event.created_at.ToNanoseconds()) / 1e9
