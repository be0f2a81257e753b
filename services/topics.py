"""Topic names, and the decoding every consumer does at its boundary."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from math import isfinite
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from tickrail.adapters import EventBus, Message
from tickrail.sdk._envelope import execution_of
from tickrail.sdk.errors import EnvelopeError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.metrics import dead_lettered

log = logging.getLogger("tickrail.bus")
ProtoMessageT = TypeVar("ProtoMessageT", bound=ProtoMessage)


@dataclass(frozen=True, slots=True)
class Topics:
    """Names of the topics one deployment uses.

    With ``per_tenant`` each kind of message gets a topic per tenant
    (``tickrail.task-inputs.acme``) so tenants never share a partition; the
    consumers then read the topics of the tenants listed in ``tenants``.
    """

    prefix: str = "tickrail."
    per_tenant: bool = False
    tenants: tuple[str, ...] = ()

    def _name(self, kind: str, tenant: str) -> str:
        return f"{self.prefix}{kind}.{tenant}" if self.per_tenant else f"{self.prefix}{kind}"

    def executions(self, tenant: str) -> str:
        return self._name("executions", tenant)

    def persisted(self, tenant: str) -> str:
        return self._name("persisted", tenant)

    def task_inputs(self, tenant: str) -> str:
        return self._name("task-inputs", tenant)

    def plan_inputs(self, tenant: str) -> str:
        return self._name("plan-inputs", tenant)

    def inputs(self, kind: int, tenant: str) -> str:
        return self.task_inputs(tenant) if kind == pb.NODE_KIND_TASK else self.plan_inputs(tenant)

    def commands(self) -> str:
        return f"{self.prefix}commands"

    def events(self) -> str:
        return f"{self.prefix}events"

    def kind_of(self, topic: str) -> str:
        """``executions`` for ``tickrail.executions.acme``: a bounded metric label."""
        if not topic.startswith(self.prefix):
            return "other"
        return topic[len(self.prefix) :].split(".", 1)[0] or "other"

    def group(self, role: str) -> str:
        """Consumer group of a role; prefixed, so deployments sharing a broker never
        share a group (and never take each other's partitions)."""
        return f"{self.prefix}{role}"

    def dead_letter(self, topic: str) -> str:
        return f"{topic}.dlq"

    def every(self, kind: str) -> list[str]:
        """Every topic of one kind (e.g. ``"executions"``) this deployment reads."""
        if not self.per_tenant:
            return [f"{self.prefix}{kind}"]
        return [f"{self.prefix}{kind}.{tenant}" for tenant in self.tenants]

    def all(self) -> list[str]:
        kinds = ("executions", "persisted", "task-inputs", "plan-inputs")
        names = [t for kind in kinds for t in self.every(kind)]
        return [*names, self.commands(), self.events()]


def decode(message_type: type[ProtoMessageT], message: Message) -> ProtoMessageT:
    """Parse ``message.value`` or raise EnvelopeError naming the topic and offset."""
    if not message.value:
        # Protobuf parses zero bytes as a message with every field empty; that is
        # never something a tickrail role sent.
        raise EnvelopeError(
            f"empty {message_type.__name__} on {message.topic} "
            f"(partition {message.partition}, offset {message.offset})"
        )
    try:
        parsed: ProtoMessageT = message_type.FromString(message.value)
        return parsed
    except (DecodeError, ValueError) as exc:
        raise EnvelopeError(
            f"undecodable {message_type.__name__} on {message.topic} "
            f"(partition {message.partition}, offset {message.offset}): {exc}"
        ) from exc


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_TOKEN_TAG = _varint(50 << 3 | 2)  # ExecutionRef.dispatch_token, length-delimited


def encode_ref(seq: int, duplicate: bool, envelope: bytes, token: str = "") -> bytes:
    """Serialize ``ExecutionRef(seq, duplicate, envelope, dispatch_token)`` around
    already-encoded envelope bytes: the wire format of an embedded message is its
    bytes, so the data plane never copies and re-encodes the envelope it just stored."""
    head = b"\x08" + _varint(seq) if seq else b""
    flag = b"\x10\x01" if duplicate else b""
    raw = token.encode()
    tail = _TOKEN_TAG + _varint(len(raw)) + raw if raw else b""
    return head + flag + b"\x1a" + _varint(len(envelope)) + envelope + tail


@dataclass(frozen=True, slots=True)
class CheckedRef(Message):
    """An ExecutionRef handed from the data plane to the control plane in one
    process, with the envelope object it was serialized from (already checked
    by ``check_envelope``, its dispatch token cleared) and that token.

    Only the data plane builds one, for an envelope it has just recorded, and
    never puts it on a bus: no message from outside can carry the object, so the
    control plane may skip parsing and re-checking its fields. It still checks the
    dispatch token (integrity) and admission exactly as for a parsed reference.
    """

    envelope: pb.ExecutionEnvelope | None = None
    token: str = ""


@dataclass(frozen=True, slots=True)
class DecodedEvent(Message):
    """A lifetime event for the events topic, with the object it was serialized
    from: this process's listeners take the object (``Runtime._observe``) instead
    of parsing the bytes again. On a bus it is an ordinary Message (the bytes)."""

    event: pb.LifetimeEvent | None = None


def check_envelope(envelope: pb.ExecutionEnvelope) -> pb.ExecutionHeader:
    """The header, after checking the fields every consumer relies on."""
    execution = execution_of(envelope)  # EnvelopeError when it holds neither kind
    header = execution.header
    if (
        not (header.exec_id and header.input_id and header.lifetime_id and header.tenant_id)
        or not header.name
    ):
        missing = [
            f
            for f in ("exec_id", "input_id", "lifetime_id", "tenant_id", "name")
            if not getattr(header, f)
        ]
        raise EnvelopeError(f"execution envelope header lacks {', '.join(missing)}")
    if header.status == pb.EXECUTION_STATUS_UNSPECIFIED:
        raise EnvelopeError(f"execution {header.exec_id} has no status")
    telemetry = execution.telemetry
    cost = telemetry.cost_usd
    metrics = telemetry.metrics
    if (
        not (isfinite(cost) and isfinite(telemetry.latency_ms))
        or (metrics and not all(isfinite(n) for n in metrics.values()))
        or telemetry.tokens_in < 0
        or telemetry.tokens_out < 0
        or cost < 0
    ):
        # Guardrails sum these: a NaN or a negative would defeat every budget.
        raise EnvelopeError(
            f"execution {header.exec_id} reports NaN, infinite or negative usage: refused"
        )
    return header


def dead_letters(topics: Topics, rejected: Sequence[tuple[Message, str]]) -> list[Message]:
    """Messages for the dead-letter topics, the reason in their headers."""
    out = []
    for message, reason in rejected:
        log.warning("dead-lettered %s offset %s: %s", message.topic, message.offset, reason)
        out.append(
            Message(
                topics.dead_letter(message.topic),
                message.key,
                message.value,
                {
                    "tickrail-error": reason[:1000],
                    "tickrail-source-topic": message.topic,
                    "tickrail-source-partition": str(message.partition),
                    "tickrail-source-offset": str(message.offset),
                },
            )
        )
    return out


async def publish_dead_letters(
    bus: EventBus, topics: Topics, rejected: Sequence[tuple[Message, str]]
) -> None:
    if rejected:
        await bus.publish(dead_letters(topics, rejected))
        for message, _ in rejected:
            dead_lettered.labels(topic=topics.kind_of(message.topic)).inc()
