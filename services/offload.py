"""Move payloads over the size threshold out of an envelope into the blob store."""

from __future__ import annotations

from collections.abc import Iterator

from tickrail.sdk._envelope import header_of, kind_of
from tickrail.sdk._payload import BlobWriter, inline_size, offload
from tickrail.sdk.pb import envelope_pb2 as pb


def _payloads(envelope: pb.ExecutionEnvelope) -> Iterator[tuple[str, pb.Payload]]:
    if kind_of(envelope) == "task":
        yield "output", envelope.task.result.output
        return
    result = envelope.plan.result
    yield "output", result.output
    for name, payload in result.task_inputs.items():
        yield f"input-{name}", payload
    for index, send in enumerate(result.sends):
        yield f"send-{index}", send.input


async def offload_large(envelope: pb.ExecutionEnvelope, blobs: BlobWriter, threshold: int) -> bool:
    """Offload every inline payload larger than ``threshold`` bytes; True if any moved.

    Keys are ``tenant/lifetime/exec_id/part`` so a tenant's blobs share a prefix.
    """
    if envelope.ByteSize() <= threshold:
        return False  # no payload inside can be larger than the whole (the usual case)
    header = header_of(envelope)
    moved = False
    for part, payload in _payloads(envelope):
        if inline_size(payload) > threshold:
            key = f"{header.tenant_id}/{header.lifetime_id}/{header.exec_id}/{part}"
            await offload(payload, blobs, key)
            moved = True
    return moved
