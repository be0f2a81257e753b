"""Live progress of a running lifetime, one line per decision."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tickrail.sdk.pb import envelope_pb2 as pb

from .console_out import Lines
from .render import EDGE, LIFETIME_WORDS, STATUS, describe_event, preview
from .streamed import StreamedOutput


class Progress:
    """Prints each event with its recorded time, relative to the lifetime's start.

    The origin is the ``started`` event's time when it is seen, else ``origin``
    (unix seconds, e.g. the lifetime's start from the store), so events read
    back later show when they happened, not when they were printed.
    """

    def __init__(
        self, stream: TextIO = sys.stderr, *, quiet: bool = False, origin: float | None = None
    ) -> None:
        self.stream = stream
        self.quiet = quiet
        self.origin = origin
        self.outputs = StreamedOutput(stream)
        self.lines = Lines(stream)  # statuses coloured on a terminal, unless NO_COLOR

    def line(self, text: str) -> None:
        if not self.quiet:
            self.outputs.end_line()
            self.lines.write(text)

    def on_event(self, event: pb.LifetimeEvent) -> None:
        kind = event.WhichOneof("kind")
        when = (
            event.created_at.ToNanoseconds() / 1e9 if event.HasField("created_at") else time.time()
        )
        if kind == "started" or self.origin is None:
            self.origin = when
        at = f"+{when - self.origin:7.3f}s"
        if kind == "output":
            if not self.quiet:
                self.outputs.show(event.output, at)
            return
        if kind == "started":
            graph = event.started.graph
            self.line(
                f"lifetime {event.lifetime_id}  graph {graph.graph_id}@{graph.version}  "
                f"tenant {event.tenant_id}"
            )
            return
        if kind == "routed":
            r = event.routed
            if not r.exec_id:
                names = ", ".join(d.name for d in r.dispatched)
                self.line(f"  {at}  {'start':<18} {'':<10} -> {names}")
                return
            if r.dispatched:
                edge = EDGE.get(r.edge, "")
                outcome = "-> " + ", ".join(d.name for d in r.dispatched)
                if r.note:  # a question answered: the node runs again
                    outcome += f"  ({r.note})"
                elif edge in {"PARALLEL", "JOIN"}:
                    outcome += f"  ({edge})"
            else:
                outcome = r.note or EDGE.get(r.edge, "")
            self.line(f"  {at}  {r.name:<18} {STATUS[r.status]:<10} {outcome}")
            return
        if kind == "completed":
            self.line(f"  {at}  {LIFETIME_WORDS[kind]}  output {preview(event.completed.output)}")
            return
        self.line(f"  {at}  {LIFETIME_WORDS.get(kind or '', kind)}  {describe_event(event)}")
