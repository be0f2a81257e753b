"""The data plane: persist execution envelopes, then announce them.

For each batch from the executions topic: decode (undecodable messages go to
the dead-letter topic), check each envelope's dispatch token (a refused one is
dead-lettered, never stored, and the control plane is told so the lifetime
shows it), offload large payloads to the blob store, append to
the state store in one transaction (idempotent on exec id), publish one
ExecutionRef per envelope, and only then commit the consumed offsets.
A redelivered envelope is not stored twice; its reference is republished
with the stored envelope, so a crash between commit and publish loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from tickrail.adapters import (
    BlobStore,
    Consumer,
    EventBus,
    ExecutionRecord,
    Message,
    NewExecution,
    StateStore,
    Wakeable,
)
from tickrail.adapters.store.base import unit_of_work
from tickrail.sdk._payload import DEFAULT_OFFLOAD_THRESHOLD
from tickrail.sdk._timestamps import seconds_of
from tickrail.sdk.errors import AdapterError, EnvelopeError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services import tracing
from tickrail.services.consume import consume_batches
from tickrail.services.dispatch import DispatchSigner, header_only
from tickrail.services.metrics import Metrics
from tickrail.services.offload import offload_large
from tickrail.services.retry import Health
from tickrail.services.topics import (
    CheckedRef,
    Topics,
    check_envelope,
    decode,
    encode_ref,
    publish_dead_letters,
)

log = logging.getLogger("tickrail.data_plane")


class Downstream(Protocol):
    """A control plane in this process (see ControlPlane.decide / publish)."""

    async def decide(self, messages: list[Message]) -> Any: ...

    async def publish(self, outgoing: Any) -> None: ...

    def forget(self, lifetime_ids: Iterable[str]) -> None: ...


def execution_row(header: pb.ExecutionHeader, envelope: bytes) -> NewExecution:
    """The store row for a serialized envelope with this header."""
    return NewExecution(
        exec_id=header.exec_id,
        lifetime_id=header.lifetime_id,
        tenant_id=header.tenant_id,
        name=header.name,
        kind=header.kind,
        status=header.status,
        created_at=seconds_of(header.created_at),
        envelope=envelope,
    )


class DataPlane:
    def __init__(
        self,
        bus: EventBus,
        store: StateStore,
        blobs: BlobStore,
        topics: Topics,
        *,
        signer: DispatchSigner,
        offload_threshold: int = DEFAULT_OFFLOAD_THRESHOLD,
        group: str = "tickrail-data-plane",
        batch_size: int = 500,
        metrics: Metrics | None = None,
        downstream: Downstream | None = None,
        health: Health | None = None,
    ) -> None:
        self.bus, self.store, self.blobs, self.topics = bus, store, blobs, topics
        self.signer = signer
        self.offload_threshold = offload_threshold
        self.group = group
        self.batch_size = batch_size
        self.metrics = metrics or Metrics("data_plane")
        # In one process the control plane takes the references directly, and
        # the executions and the decisions they cause commit in one transaction.
        self.downstream = downstream
        self.health = health or Health()
        self._consumer: Consumer | None = None

    async def subscribe(self) -> None:
        self._consumer = await self._join()

    def wakeup(self) -> None:
        """Cut a poll short (the in-process bus can), so a stop is prompt."""
        if isinstance(self._consumer, Wakeable):
            self._consumer.wakeup()

    async def _join(self) -> Consumer:
        return await self.bus.subscribe(self.topics.every("executions"), self.group)

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; the batch in hand is finished first."""
        if self._consumer is None:
            await self.subscribe()
        consumer = self._consumer
        assert consumer is not None
        await consume_batches(
            consumer,
            self.handle,
            stopping,
            batch_size=self.batch_size,
            metrics=self.metrics,
            dead_letter=self._dead_letter,
            health=self.health,
            subscribe=self._join,
            what="data plane",
        )

    async def _dead_letter(self, message: Message, reason: str) -> None:
        await publish_dead_letters(self.bus, self.topics, [(message, reason)])

    async def handle(self, messages: list[Message]) -> None:
        started = self.metrics.clock()
        rows: list[NewExecution] = []
        values: list[bytes] = []
        tokens: list[str] = []
        envelopes: list[pb.ExecutionEnvelope] = []
        rejected: list[tuple[Message, str]] = []
        notices: list[Message] = []
        spans = tracing.PersistSpans()
        for message in messages:
            try:
                envelope = decode(pb.ExecutionEnvelope, message)
                header = check_envelope(envelope)
            except EnvelopeError as exc:
                rejected.append((message, str(exc)))
                continue
            try:
                token = header.dispatch_token
                problem = self.signer.check(header, token, envelope.WhichOneof("execution") or "")
                if problem:
                    rejected.append((message, f"refused: {problem}"))
                    notices.append(self._notice(envelope, header, problem))
                    continue
                # The token is proof for this hop, not part of the record: tenants
                # read their envelopes, and an open input's token must not leak.
                header.ClearField("dispatch_token")
                await offload_large(envelope, self.blobs, self.offload_threshold)
                value = envelope.SerializeToString()
                row = execution_row(header, value)
            except AdapterError:
                raise  # the blob store: retry the batch, nothing was committed
            except Exception as exc:
                # A fault in our code on one envelope must not stop the role.
                self.metrics.inc("errors_total")
                log.exception("cannot handle %s offset %s", message.topic, message.offset)
                rejected.append((message, f"internal error: {type(exc).__name__}: {exc}"))
                continue
            values.append(value)
            tokens.append(token)
            envelopes.append(envelope)
            rows.append(row)
            spans.start(message.headers, header)
        if notices:
            self.metrics.inc("envelopes_refused_total", len(notices))
        carriers = spans.carriers(len(rows))
        if self.downstream is not None:
            try:
                async with unit_of_work(self.store):
                    records = await self.store.append_executions(rows) if rows else []
                    refs = self._refs(values, tokens, records, carriers, envelopes)
                    decided = await self.downstream.decide(refs + notices)
                await self.downstream.publish(decided)
            except BaseException:
                # Rolled back or half published: the control plane must not keep
                # routing it did in memory only (the batch is handled again).
                self.downstream.forget(m.key for m in messages)
                raise
        else:
            records = await self.store.append_executions(rows) if rows else []
            await self.bus.publish(self._refs(values, tokens, records, carriers) + notices)
        spans.end()
        await publish_dead_letters(self.bus, self.topics, rejected)
        self.metrics.observe_batch(len(messages), len(rejected), started)
        if duplicates := sum(not r.created for r in records):
            log.info("ignored %d redelivered envelope(s)", duplicates)

    def _notice(
        self, envelope: pb.ExecutionEnvelope, header: pb.ExecutionHeader, reason: str
    ) -> Message:
        """A signed word to the control plane that this envelope was refused, so the
        lifetime it names shows it; it carries the header only, never the payload."""
        ref = pb.ExecutionRef(
            envelope=header_only(envelope),
            refused=reason,
            dispatch_token=self.signer.notice(header, reason),
        )
        return Message(
            self.topics.persisted(header.tenant_id), header.lifetime_id, ref.SerializeToString()
        )

    def _refs(
        self,
        values: list[bytes],
        tokens: list[str],
        records: list[ExecutionRecord],
        headers: list[dict[str, str]],
        envelopes: list[pb.ExecutionEnvelope] | None = None,
    ) -> list[Message]:
        """References to publish; with ``envelopes`` (the control plane in this
        process takes them directly), a newly recorded one carries its envelope
        object, so the control plane need not parse and check it again."""
        refs: list[Message] = []
        for i, (value, token, record, carrier) in enumerate(
            zip(values, tokens, records, headers, strict=True)
        ):
            stored = value if record.created else record.envelope
            topic = self.topics.persisted(record.tenant_id)
            encoded = encode_ref(record.seq, not record.created, stored, token)
            if envelopes is not None and record.created:
                # A redelivered one keeps the stored bytes, which this object may not be.
                ref: Message = CheckedRef(
                    topic, record.lifetime_id, encoded, carrier, envelope=envelopes[i], token=token
                )
            else:
                ref = Message(topic, record.lifetime_id, encoded, carrier)
            refs.append(ref)  # carrier: the persist span, decide is its child
        return refs
