"""Admission: may this envelope act on this lifetime? Pure functions, no I/O.

The dispatch token (services/dispatch.py) proves that *some* input with the
envelope's ids was dispatched; admission checks that it is one the lifetime
is still waiting for. A refused envelope changes nothing: it is recorded as a
tenant-visible ``refused`` event (without its payload) and dead-lettered.
"""

from __future__ import annotations

import hashlib

from google.protobuf.timestamp_pb2 import Timestamp

from tickrail.sdk.pb import envelope_pb2 as pb

from .state import LifetimeState


def unanswered(state: LifetimeState, header: pb.ExecutionHeader) -> str:
    """Why the header does not answer an open input of ``state`` ('' when it does)."""
    if header.tenant_id != state.tenant_id:
        return "the envelope's tenant is not the lifetime's"
    graph = state.graph
    if header.graph_id != graph.graph_id or header.graph_version != graph.version:
        return "the envelope's graph or graph version is not the lifetime's"
    pending = state.pending.get(header.input_id)
    if pending is None:
        return f"input {header.input_id!r} is not open (never dispatched, or already answered)"
    if pending.name != header.name or pending.kind != header.kind:
        return f"input {header.input_id!r} was dispatched to another node"
    return ""


def refused_event(
    state: LifetimeState,
    header: pb.ExecutionHeader,
    reason: str,
    topic: str,
    raw: bytes,
    now: float,
) -> pb.LifetimeEvent:
    """The event telling the lifetime's tenant an envelope was refused.

    Its id derives from the refused bytes: the same message redelivered
    appends nothing, each different one is recorded once.
    """
    digest = hashlib.sha256(raw).hexdigest()[:24]
    created = Timestamp()
    created.FromNanoseconds(int(now * 1e9))
    return pb.LifetimeEvent(
        event_id=f"{state.lifetime_id}/refused/{digest}",
        lifetime_id=state.lifetime_id,
        tenant_id=state.tenant_id,
        created_at=created,
        refused=pb.EnvelopeRefused(
            exec_id=header.exec_id[:200],
            input_id=header.input_id[:200],
            name=header.name[:200],
            reason=reason[:1000],
            topic=topic,
        ),
    )
