"""The control plane: judge each persisted execution, then route the next work.

For each batch of references and commands it updates the lifetimes' states
(in memory; rebuilt from the store on a miss), asks the guardrails for a
verdict, routes, appends every decision to the store in one transaction,
publishes the next inputs and the events, and only then commits offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from tickrail.adapters import Consumer, EventBus, Message, NewEvent, RebalanceHooks, StateStore
from tickrail.sdk.errors import AdapterError, EnvelopeError, PolicyError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services import metrics as series
from tickrail.services import tracing
from tickrail.services.consume import consume_batches
from tickrail.services.dispatch import DispatchSigner
from tickrail.services.metrics import Metrics
from tickrail.services.topics import Topics, check_envelope, decode, publish_dead_letters

from .admission import refused_event, unanswered
from .projection import rebuild
from .routing import PAUSE, Decision, abort, fail, pause, resume, route, start
from .state import LifetimeState

log = logging.getLogger("tickrail.control_plane")


@dataclass(slots=True)
class Outgoing:
    """Decisions already appended to the store, waiting to be published."""

    events: list[Message] = field(default_factory=list)
    inputs: list[Message] = field(default_factory=list)
    rejected: list[tuple[Message, str]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    #: when the executions that caused ``inputs`` were published (for the planner loop)
    caused_at: list[float] = field(default_factory=list)


class _Admitted(Exception):
    """A fault in our code on an execution that passed admission (see ``_decide``)."""

    def __init__(self, cause: Exception, lifetime_id: str) -> None:
        super().__init__(str(cause))
        self.cause, self.lifetime_id = cause, lifetime_id


class Verdict(Protocol):
    def to_proto(self, exec_id: str) -> pb.GuardrailDecision: ...


class Guard(Protocol):
    """What the control plane asks before routing (the guardrail engine)."""

    async def check(
        self, envelope: pb.ExecutionEnvelope, *, lifetime_started_at: float
    ) -> Sequence[Verdict]: ...


@runtime_checkable
class RestoresLifetimes(Protocol):
    """A Guard that keeps per-lifetime aggregates and can rebuild them from the
    record (the guardrail engine); asked when a lifetime's state is rebuilt."""

    async def restore_lifetime(
        self, lifetime_id: str, executions: Sequence[pb.ExecutionEnvelope]
    ) -> None: ...


class ControlPlane:
    def __init__(
        self,
        bus: EventBus,
        store: StateStore,
        topics: Topics,
        *,
        signer: DispatchSigner,
        guard: Guard | None = None,
        group: str = "tickrail-control-plane",
        batch_size: int = 500,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        forward_inputs: Callable[[list[Message]], Awaitable[None]] | None = None,
        observe: Callable[[list[Message]], None] | None = None,
    ) -> None:
        self.bus, self.store, self.topics = bus, store, topics
        self.signer = signer
        self.guard = guard
        self.group = group
        self.batch_size = batch_size
        self.clock = clock
        self.metrics = metrics or Metrics("control_plane")
        self._states: dict[str, LifetimeState] = {}
        # In one process, node inputs can go straight to the executor, and events
        # straight to whoever follows lifetimes here (they still go on the bus).
        self.forward_inputs = forward_inputs
        self.observe = observe
        self._consumer: Consumer | None = None

    async def subscribe(self) -> None:
        topics = [*self.topics.every("persisted"), self.topics.commands()]
        self._consumer = await self.bus.subscribe(topics, self.group)
        # With several replicas, a partition can move away and come back; the
        # states cached meanwhile would miss what the other replica decided.
        if isinstance(self._consumer, RebalanceHooks):
            self._consumer.on_rebalance(self._states.clear)

    async def run(self, stopping: asyncio.Event) -> None:
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
        )

    async def _dead_letter(self, message: Message, reason: str) -> None:
        await publish_dead_letters(self.bus, self.topics, [(message, reason)])

    # ---- one batch ----------------------------------------------------------

    async def handle(self, messages: list[Message]) -> None:
        started = self.metrics.clock()
        outgoing = await self.decide(messages)
        await self.publish(outgoing)
        self.metrics.observe_batch(len(messages), len(outgoing.rejected), started)

    async def decide(self, messages: list[Message]) -> Outgoing:
        """Judge, route and append the decisions for a batch; publish nothing yet.

        Split from ``publish`` so that, in one process, the data plane can record
        executions and these decisions in a single transaction.
        """
        try:
            return await self._decide(messages)
        except BaseException:
            # Routing updated cached states in place; the events did not reach the
            # store. Rebuild from the store, or a retry would find them "seen".
            self._states.clear()
            raise

    async def _decide(self, messages: list[Message]) -> Outgoing:
        decided: list[tuple[LifetimeState, Decision]] = []
        rejected: list[tuple[Message, str]] = []
        commands = self.topics.commands()
        caused_at: list[float] = []
        for message in messages:
            is_command = message.topic == commands
            try:
                with tracing.decide_span(
                    message.headers, message.key, "command" if is_command else "execution"
                ):
                    if is_command:
                        outcome = await self._command(decode(pb.LifetimeCommand, message))
                    else:
                        ref = decode(pb.ExecutionRef, message)
                        outcome = await self._reference(message, ref, rejected)
                        if outcome is not None and outcome[1].dispatch:
                            finished = check_envelope(ref.envelope).finished_at
                            caused_at.append(finished.ToNanoseconds() / 1e9)
            except EnvelopeError as exc:
                rejected.append((message, str(exc)))
                continue
            except AdapterError:
                raise  # the store or bus: the batch is retried, nothing was committed
            except _Admitted as fault:
                # A fault in our code on an execution the lifetime was waiting for: it
                # must not stop the role for every other lifetime. Fail only this one.
                outcome = await self._fault(message, fault.cause, rejected, fault.lifetime_id)
            except Exception as exc:
                # Before admission the message may be anyone's: it must not be able to
                # fail a lifetime it names, so it is only dead-lettered. Commands come
                # from trusted front ends: a fault on one fails its lifetime.
                outcome = await self._fault(
                    message, exc, rejected, (message.key or "") if is_command else ""
                )
            if outcome is not None and (outcome[1].events or outcome[1].dispatch):
                decided.append(outcome)
        outgoing = await self._append(decided)
        outgoing.rejected = rejected
        outgoing.caused_at = caused_at
        return outgoing

    async def _fault(
        self,
        message: Message,
        exc: BaseException,
        rejected: list[tuple[Message, str]],
        lifetime_id: str,
    ) -> tuple[LifetimeState, Decision] | None:
        """Dead-letter the message; with ``lifetime_id``, fail that lifetime, the error
        recorded (a ``failed`` event without an exec id, replayed as a fact)."""
        self.metrics.inc("errors_total")
        reason = f"internal error handling this message: {type(exc).__name__}: {exc}"[:1000]
        log.error("%s offset %s: %s", message.topic, message.offset, reason, exc_info=exc)
        rejected.append((message, reason))
        self._states.pop(lifetime_id, None)  # it may be half-updated: rebuild it
        try:
            state = await self._state(lifetime_id) if lifetime_id else None
        except AdapterError:
            raise
        except Exception:
            log.exception("cannot rebuild lifetime %s after an internal error", lifetime_id)
            return None
        if state is None or state.terminal:
            return None
        return state, fail(state, reason, self.clock(), error_type=type(exc).__name__)

    async def publish(self, outgoing: Outgoing) -> None:
        """Make appended decisions visible: events to watchers, inputs to executors."""
        if self.forward_inputs is not None:
            await self.bus.publish(outgoing.events)
            await self.forward_inputs(outgoing.inputs)
        else:
            await self.bus.publish(outgoing.events + outgoing.inputs)
        now = self.clock()
        for published_at in outgoing.caused_at:
            series.planner_loop.observe(max(0.0, now - published_at))
        if self.observe is not None and outgoing.events:
            self.observe(outgoing.events)
        await publish_dead_letters(self.bus, self.topics, outgoing.rejected)
        for lifetime_id in outgoing.finished:
            self._states.pop(lifetime_id, None)

    async def _reference(
        self, message: Message, ref: pb.ExecutionRef, rejected: list[tuple[Message, str]]
    ) -> tuple[LifetimeState, Decision] | None:
        header = check_envelope(ref.envelope)
        if ref.refused:
            # The data plane refused (and dead-lettered) the envelope: only tell the lifetime.
            if not self.signer.notice_ok(header, ref.refused, ref.dispatch_token):
                raise EnvelopeError("refusal notice with a bad signature")
            known = await self._state(header.lifetime_id)
            if known is None:
                return None
            return self._refuse(known, header, ref.refused, message, None)
        state = await self._state(header.lifetime_id)
        if state is None:
            raise EnvelopeError(
                f"refused: execution {header.exec_id} names unknown lifetime {header.lifetime_id}"
            )
        which = ref.envelope.WhichOneof("execution") or ""
        problem = self.signer.check(header, ref.dispatch_token, which)
        if not problem and (header.exec_id in state.seen or state.terminal):
            return None  # redelivered, or late work of a finished lifetime
        problem = problem or unanswered(state, header)
        if problem:
            return self._refuse(state, header, problem, message, rejected)
        try:
            return state, await self._judge(state, header, ref.envelope)
        except (AdapterError, EnvelopeError):
            raise
        except Exception as exc:
            raise _Admitted(exc, state.lifetime_id) from exc

    async def _judge(
        self, state: LifetimeState, header: pb.ExecutionHeader, envelope: pb.ExecutionEnvelope
    ) -> Decision:
        """Guardrails, then routing, for an admitted execution."""
        verdicts: list[pb.GuardrailDecision] = []
        if self.guard is not None:
            try:
                found = await self.guard.check(envelope, lifetime_started_at=state.started_at)
                verdicts = [v.to_proto(header.exec_id) for v in found]
            except PolicyError as exc:
                # A rule that cannot be evaluated must not wave the execution through:
                # hold the lifetime for a person to look at (resume after fixing it).
                log.error("guardrail evaluation failed for %s: %s", header.exec_id, exc)
                verdicts = [
                    pb.GuardrailDecision(
                        exec_id=header.exec_id,
                        rule=exc.rule or "policy.error",
                        action=PAUSE,
                        scope="execution",
                        message=f"the policy could not be evaluated: {exc}",
                    )
                ]
        for verdict in verdicts:
            series.guardrail_verdicts.labels(action=verdict.action, rule=verdict.rule).inc()
        return route(state, envelope, verdicts, self.clock())

    def _refuse(
        self,
        state: LifetimeState,
        header: pb.ExecutionHeader,
        reason: str,
        message: Message,
        rejected: list[tuple[Message, str]] | None,
    ) -> tuple[LifetimeState, Decision]:
        """Tell the lifetime an envelope was refused; nothing else about it changes."""
        self.metrics.inc("envelopes_refused_total")
        log.warning(
            "refused execution %r for lifetime %s: %s", header.exec_id, state.lifetime_id, reason
        )
        if rejected is not None:
            rejected.append((message, f"refused: {reason}"))
        event = refused_event(state, header, reason, message.topic, message.value, self.clock())
        return state, Decision(events=[event])

    async def _command(self, command: pb.LifetimeCommand) -> tuple[LifetimeState, Decision] | None:
        kind = command.WhichOneof("kind")
        now = self.clock()
        if kind == "start":
            if not command.lifetime_id or not command.start.graph.entry:
                raise EnvelopeError("start command needs a lifetime id and a graph")
            existing = await self._state(command.lifetime_id)
            if existing is not None:
                if command.tenant_id and command.tenant_id != existing.tenant_id:
                    # Another tenant's id: refused like any unknown command, no effect.
                    raise EnvelopeError(
                        f"refused: lifetime id {command.lifetime_id!r} is not available"
                    )
                return None  # a redelivered start
            created, decision = start(command, now)
            self._states[created.lifetime_id] = created
            return created, decision
        state = await self._state(command.lifetime_id)
        if state is None or (command.tenant_id and command.tenant_id != state.tenant_id):
            # The same answer whether the lifetime is missing or another tenant's.
            raise EnvelopeError(f"{kind} command for unknown lifetime {command.lifetime_id}")
        if kind == "pause":
            return state, pause(state, command.pause.reason, now, command.command_id)
        if kind == "resume":
            return state, resume(state, command.resume, now, command.command_id)
        if kind == "abort":
            return state, abort(state, command.abort.reason, now, command.command_id)
        raise EnvelopeError(f"command {command.command_id!r} has no kind")

    async def _append(self, decided: list[tuple[LifetimeState, Decision]]) -> Outgoing:
        """Append every event of the batch in one call; return what to publish after."""
        outgoing = Outgoing()
        rows: list[NewEvent] = []
        events_topic = self.topics.events()
        for state, decision in decided:
            for event in decision.events:
                body = event.SerializeToString()
                rows.append(
                    NewEvent(
                        event_id=event.event_id,
                        lifetime_id=state.lifetime_id,
                        tenant_id=state.tenant_id,
                        graph_id=state.graph_id,
                        kind=event.WhichOneof("kind") or "",
                        status=state.status,
                        created_at=event.created_at.ToNanoseconds() / 1e9,
                        body=body,
                    )
                )
                outgoing.events.append(Message(events_topic, state.lifetime_id, body))
            for node_input in decision.dispatch:
                # Signed on the published copy only: the recorded one carries no token.
                value, headers = tracing.input_message(self.signer.sign(node_input))
                outgoing.inputs.append(
                    Message(
                        self.topics.inputs(node_input.kind, state.tenant_id),
                        state.lifetime_id,
                        value,
                        headers,
                    )
                )
            if state.terminal:
                outgoing.finished.append(state.lifetime_id)
                tracing.lifetime_finished(
                    state.lifetime_id,
                    state.tenant_id,
                    state.graph_id,
                    state.status,
                    state.started_at,
                )
        if rows:
            await self.store.append_events(rows)
        return outgoing

    # ---- state --------------------------------------------------------------

    async def _state(self, lifetime_id: str) -> LifetimeState | None:
        cached = self._states.get(lifetime_id)
        if cached is not None:
            return cached
        state = await self.load(lifetime_id)
        if state is not None and not state.terminal:
            self._states[lifetime_id] = state
        return state

    async def load(self, lifetime_id: str) -> LifetimeState | None:
        """Rebuild a lifetime's state from the store (None if it never started)."""
        records = await self.store.events(lifetime_id)
        if not records:
            return None
        events = [pb.LifetimeEvent.FromString(r.body) for r in records]
        executions = {
            r.exec_id: pb.ExecutionEnvelope.FromString(r.envelope)
            for r in await self.store.executions(lifetime_id)
        }
        state = rebuild(events, executions)
        guard = self.guard
        if state is not None and not state.terminal and isinstance(guard, RestoresLifetimes):
            await guard.restore_lifetime(lifetime_id, list(executions.values()))
        return state

    async def recover(
        self,
        lifetime_ids: Sequence[str] | None = None,
        *,
        graph_ids: Collection[str] | None = None,
    ) -> int:
        """Re-publish the pending inputs of running lifetimes (after a crash).

        An input may have been dispatched and even executed already; executors
        derive exec ids from input ids, so a second run is deduplicated by the
        data plane. ``graph_ids`` limits it to lifetimes of those graphs (a
        process whose executor serves only them must not claim the others).
        Returns how many inputs were re-published.
        """
        if lifetime_ids is None:
            summaries = await self.store.list_lifetimes(
                status=pb.LIFETIME_STATUS_RUNNING, limit=100_000
            )
            lifetime_ids = [s.lifetime_id for s in summaries]
        out: list[Message] = []
        for lifetime_id in lifetime_ids:
            state = await self._state(lifetime_id)
            if state is None or state.terminal:
                continue
            if graph_ids is not None and state.graph_id not in graph_ids:
                continue
            asked = {i.input_id for i in state.waiting.values()}  # those wait for a person
            for node_input in state.pending.values():
                if node_input.input_id in asked:
                    continue
                out.append(
                    Message(
                        self.topics.inputs(node_input.kind, state.tenant_id),
                        lifetime_id,
                        self.signer.signed(node_input),
                    )
                )
        if out:
            await self.bus.publish(out)
        return len(out)
