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
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tickrail.adapters import (
    Consumer,
    EventBus,
    Message,
    NewEvent,
    RebalanceHooks,
    StateStore,
    Wakeable,
)
from tickrail.sdk._envelope import execution_of
from tickrail.sdk._timestamps import seconds_of
from tickrail.sdk.errors import AdapterError, EnvelopeError, PolicyError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services import metrics as series
from tickrail.services import tracing
from tickrail.services.consume import consume_batches
from tickrail.services.dispatch import DispatchSigner
from tickrail.services.metrics import Metrics
from tickrail.services.retry import Health
from tickrail.services.topics import (
    CheckedRef,
    DecodedEvent,
    Topics,
    check_envelope,
    decode,
    publish_dead_letters,
)

from .admission import refused_event, unanswered
from .projection import rebuild
from .routing import PAUSE, Decision, abort, fail, pause, resume, route, start
from .state import LifetimeState

log = logging.getLogger("tickrail.control_plane")

# After the consumer group changed (a rebalance or a rejoin: maybe a broker that
# lost its data), every pending input is re-dispatched at once, and those still
# pending then are re-dispatched again this many seconds later: a broker that
# restarted can lose or hide what was published in its first moments (Tansu
# keeps records written before a topic is created again out of consumers'
# sight), and no later message would bring them back. Repeats are absorbed.
RECHECK_AFTER_S = (10.0, 30.0, 90.0)


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
        health: Health | None = None,
    ) -> None:
        self.bus, self.store, self.topics = bus, store, topics
        self.signer = signer
        self.guard = guard
        self.group = group
        self.batch_size = batch_size
        self.clock = clock
        self.metrics = metrics or Metrics("control_plane")
        # Topic names, once (Topics is frozen): each is a call and an f-string per step.
        self._commands_topic = topics.commands()
        self._events_topic = topics.events()
        self._input_topics: dict[tuple[int, str], str] = {}
        self._states: dict[str, LifetimeState] = {}
        # In one process, node inputs can go straight to the executor, and events
        # straight to whoever follows lifetimes here (they still go on the bus).
        self.forward_inputs = forward_inputs
        self.observe = observe
        self.health = health or Health()
        self._consumer: Consumer | None = None
        # Loading, routing and recovering never interleave: a state loaded by
        # one must not overwrite a newer one cached by the other meanwhile.
        self._lock = asyncio.Lock()
        # Lifetimes whose batch failed half-way: their decisions may be in the
        # store without their inputs on the bus, so their pending inputs are
        # published again with the next batch that gets through.
        self._suspect: set[str] = set()
        # Set when the group rebalanced or the consumer rejoined (the broker may
        # have lost every message): re-dispatch what the store says is pending.
        self._recover_all = False
        # Set by a rebalance, which can fire at any await: the cache is cleared
        # before the next batch, never in the middle of one (a state reloaded
        # mid-batch would miss the batch's decisions not yet appended).
        self._stale = False
        # Follow-up passes after a group change (RECHECK_AFTER_S): when each is
        # due (monotonic), and the input ids the previous pass re-dispatched.
        self._rechecks: list[float] = []
        self._redispatched: set[str] = set()
        self._group_changed = False
        self.monotonic: Callable[[], float] = time.monotonic  # when rechecks are due

    async def subscribe(self) -> None:
        self._consumer = await self._join()

    def wakeup(self) -> None:
        """Cut a poll short (the in-process bus can), so a stop is prompt."""
        if isinstance(self._consumer, Wakeable):
            self._consumer.wakeup()

    async def _join(self) -> Consumer:
        topics = [*self.topics.every("persisted"), self.topics.commands()]
        consumer = await self.bus.subscribe(topics, self.group)
        # With several replicas, a partition can move away and come back; the
        # states cached meanwhile would miss what the other replica decided.
        # A broker that restarted without its data also shows up as a rebalance.
        if isinstance(consumer, RebalanceHooks):
            consumer.on_rebalance(self._rebalanced)
        return consumer

    def _rebalanced(self) -> None:
        self._stale = True
        self._recover_all = True
        self._group_changed = True

    def _drop_stale(self) -> None:
        if self._stale:
            self._stale = False
            self._states.clear()

    async def _rejoined(self) -> None:
        self._rebalanced()

    def request_recovery(self) -> None:
        """Re-dispatch every pending input from the store before the next batch."""
        self._recover_all = True

    async def _tick(self) -> None:
        """Between polls: after a rejoin or rebalance, re-dispatch from the store
        (and again later what is still pending then, see RECHECK_AFTER_S)."""
        if self._recover_all:
            self._recover_all = False
            try:
                recovered = await self._recover_pending()
            except BaseException:
                self._recover_all = True
                raise
            if self._group_changed:
                self._group_changed = False
                self._redispatched = {input_id for input_id, _ in recovered}
                started = self.monotonic()
                self._rechecks = [started + after for after in RECHECK_AFTER_S]
            if recovered:
                log.warning(
                    "re-dispatched %d pending input(s) after the consumer group changed",
                    len(recovered),
                )
        elif self._rechecks and self.monotonic() >= self._rechecks[0]:
            await self._recheck()

    async def _recheck(self) -> None:
        """Re-dispatch the inputs that were pending at the previous pass and still are."""
        async with self._lock:
            self._drop_stale()
            pending = await self._pending_inputs(await self._open_lifetimes())
        again = [message for input_id, message in pending if input_id in self._redispatched]
        if again:
            await self.bus.publish(again)
            log.warning(
                "re-dispatched %d input(s) still pending since the consumer group changed",
                len(again),
            )
        # Every pass runs, even one that found nothing to repeat: an input
        # dispatched after the previous pass can be the one hidden.
        self._rechecks.pop(0)
        self._redispatched = {input_id for input_id, _ in pending}

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
            health=self.health,
            subscribe=self._join,
            on_rejoin=self._rejoined,
            tick=self._tick,
            what="control plane",
        )

    async def _dead_letter(self, message: Message, reason: str) -> None:
        await publish_dead_letters(self.bus, self.topics, [(message, reason)])

    # ---- one batch ----------------------------------------------------------

    async def handle(self, messages: list[Message]) -> None:
        """Decide and publish one batch; safe to call again with the same batch
        after it raised (what reached the store is not decided twice, and what
        may not have reached the bus is published again)."""
        started = self.metrics.clock()
        try:
            outgoing = await self.decide(messages)
            await self.publish(outgoing)
        except BaseException:
            self.forget(m.key for m in messages)
            raise
        self.metrics.observe_batch(len(messages), len(outgoing.rejected), started)

    def forget(self, lifetime_ids: Iterable[str]) -> None:
        """A batch touching these lifetimes failed half-way: drop their cached
        states (they may hold routing the store never got) and re-publish their
        pending inputs with the next batch that succeeds."""
        for lifetime_id in lifetime_ids:
            self._states.pop(lifetime_id, None)
            self._suspect.add(lifetime_id)

    async def decide(self, messages: list[Message]) -> Outgoing:
        """Judge, route and append the decisions for a batch; publish nothing yet.

        Split from ``publish`` so that, in one process, the data plane can record
        executions and these decisions in a single transaction.
        """
        async with self._lock:
            if self._stale:
                self._drop_stale()
            try:
                outgoing = await self._decide(messages)
            except BaseException:
                # Routing updated cached states in place; the events did not reach
                # the store. Rebuild from the store, or a retry would find them "seen".
                self._states.clear()
                raise
            if self._suspect:
                suspects, self._suspect = self._suspect, set()
                try:
                    again = await self._pending_messages(sorted(suspects))
                except BaseException:
                    self._suspect |= suspects
                    raise
                known = {(m.topic, m.value) for m in outgoing.inputs}
                outgoing.inputs += [m for m in again if (m.topic, m.value) not in known]
        return outgoing

    async def _decide(self, messages: list[Message]) -> Outgoing:
        decided: list[tuple[LifetimeState, Decision]] = []
        rejected: list[tuple[Message, str]] = []
        commands = self._commands_topic
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
                        if isinstance(message, CheckedRef) and message.envelope is not None:
                            # From this process's data plane: parsed and checked there.
                            envelope, token, refused = message.envelope, message.token, ""
                            execution = execution_of(envelope)
                            header = execution.header
                        else:
                            ref = decode(pb.ExecutionRef, message)
                            envelope, token, refused = ref.envelope, ref.dispatch_token, ref.refused
                            header = check_envelope(envelope)
                            execution = execution_of(envelope)
                        outcome = await self._reference(
                            message, envelope, execution, header, token, refused, rejected
                        )
                        if outcome is not None and outcome[1].dispatch:
                            caused_at.append(seconds_of(header.finished_at))
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
        if outgoing.caused_at:
            now = self.clock()
            for published_at in outgoing.caused_at:
                series.planner_loop.observe(max(0.0, now - published_at))
        if self.observe is not None and outgoing.events:
            self.observe(outgoing.events)
        if outgoing.rejected:
            await publish_dead_letters(self.bus, self.topics, outgoing.rejected)
        for lifetime_id in outgoing.finished:
            self._states.pop(lifetime_id, None)

    async def _reference(
        self,
        message: Message,
        envelope: pb.ExecutionEnvelope,
        execution: pb.TaskExecution | pb.PlanExecution,
        header: pb.ExecutionHeader,
        token: str,
        refused: str,
        rejected: list[tuple[Message, str]],
    ) -> tuple[LifetimeState, Decision] | None:
        """An ExecutionRef's envelope (its execution, its header checked), token and
        refusal, if any."""
        if refused:
            # The data plane refused (and dead-lettered) the envelope: only tell the lifetime.
            if not self.signer.notice_ok(header, refused, token):
                raise EnvelopeError("refusal notice with a bad signature")
            known = await self._state(header.lifetime_id)
            if known is None:
                return None
            return self._refuse(known, header, refused, message, None)
        state = await self._state(header.lifetime_id)
        if state is None:
            raise EnvelopeError(
                f"refused: execution {header.exec_id} names unknown lifetime {header.lifetime_id}"
            )
        which = "task" if isinstance(execution, pb.TaskExecution) else "plan"
        problem = self.signer.check(header, token, which)
        if not problem and (header.exec_id in state.seen or state.terminal):
            return None  # redelivered, or late work of a finished lifetime
        problem = problem or unanswered(state, header)
        if problem:
            return self._refuse(state, header, problem, message, rejected)
        try:
            if self.guard is None:  # no guardrails: nothing to ask, route at once
                return state, route(state, envelope, [], self.clock(), execution)
            return state, await self._judge(state, header, envelope, execution)
        except (AdapterError, EnvelopeError):
            raise
        except Exception as exc:
            raise _Admitted(exc, state.lifetime_id) from exc

    async def _judge(
        self,
        state: LifetimeState,
        header: pb.ExecutionHeader,
        envelope: pb.ExecutionEnvelope,
        execution: pb.TaskExecution | pb.PlanExecution,
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
        return route(state, envelope, verdicts, self.clock(), execution)

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
        events_topic = self._events_topic
        input_topics = self._input_topics
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
                        created_at=seconds_of(event.created_at),
                        body=body,
                    )
                )
                outgoing.events.append(
                    DecodedEvent(events_topic, state.lifetime_id, body, event=event)
                )
            for node_input in decision.dispatch:
                # Signed on the published copy only: the recorded one carries no token.
                value, headers = tracing.input_message(node_input, self.signer)
                where = (node_input.kind, state.tenant_id)
                topic = input_topics.get(where)
                if topic is None:
                    topic = input_topics[where] = self.topics.inputs(*where)
                outgoing.inputs.append(Message(topic, state.lifetime_id, value, headers))
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
        if not outgoing.finished:
            return outgoing
        ended: Callable[[str], Awaitable[None]] | None = getattr(self.guard, "lifetime_ended", None)
        for lifetime_id in outgoing.finished:
            if ended is None:
                break
            try:
                await ended(lifetime_id)
            except AdapterError as exc:  # only a TTL: never fail the batch for it
                log.warning("cannot let the aggregates of %s expire: %s", lifetime_id, exc)
        return outgoing

    # ---- state --------------------------------------------------------------

    async def _state(self, lifetime_id: str) -> LifetimeState | None:
        cached = self._states.get(lifetime_id)
        if cached is not None:
            return cached
        state = await self.load(lifetime_id)
        cached = self._states.get(lifetime_id)
        if cached is not None:
            return cached  # cached while we read the store: it is at least as new
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
        return rebuild(events, executions)

    async def rebuild_aggregates(self) -> None:
        """The KV lost the guardrail aggregates: count again every execution this
        control plane judged, from the store (the guardrails call this, inside a
        batch, so it must not take the lock).

        Judged means routed: a lifetime's state (cached, so including the batch
        in hand, else rebuilt from its log) lists them, so an execution that is
        stored but not yet judged is counted when it is, exactly once.
        """
        recount = getattr(self.guard, "recount", None)
        if recount is None:
            return
        from .guardrails import Judged

        started = time.monotonic()
        judged: list[Judged] = []
        for summary in await self.store.list_lifetimes(limit=10_000_000):
            lifetime_id = summary.lifetime_id
            records = await self.store.executions(lifetime_id)
            envelopes = {r.exec_id: pb.ExecutionEnvelope.FromString(r.envelope) for r in records}
            state = self._states.get(lifetime_id)
            if state is None:
                events = [
                    pb.LifetimeEvent.FromString(r.body)
                    for r in await self.store.events(lifetime_id)
                ]
                state = rebuild(events, envelopes)
            if state is None:
                continue
            mine = [envelopes[r.exec_id] for r in records if r.exec_id in state.seen]
            judged.append(Judged(lifetime_id, mine, ended=state.terminal))
        counted = await recount(judged)
        log.warning(
            "rebuilt guardrail aggregates of %d lifetime(s) from %d execution(s) in %.1f s",
            len(judged),
            counted,
            time.monotonic() - started,
        )

    async def recover(
        self,
        lifetime_ids: Sequence[str] | None = None,
        *,
        graph_ids: Collection[str] | None = None,
    ) -> int:
        """Re-publish the pending inputs of running and paused lifetimes (after a crash).

        An input may have been dispatched and even executed already; executors
        derive exec ids from input ids, so a second run is deduplicated by the
        data plane. ``graph_ids`` limits it to lifetimes of those graphs (a
        process whose executor serves only them must not claim the others).
        Returns how many inputs were re-published.
        """
        return len(await self._recover_pending(lifetime_ids, graph_ids=graph_ids))

    async def _recover_pending(
        self,
        lifetime_ids: Sequence[str] | None = None,
        *,
        graph_ids: Collection[str] | None = None,
    ) -> list[tuple[str, Message]]:
        """``recover``, returning the (input id, message) pairs it re-published."""
        async with self._lock:
            self._drop_stale()
            if lifetime_ids is None:
                lifetime_ids = await self._open_lifetimes()
            out = await self._pending_inputs(lifetime_ids, graph_ids)
        if out:
            await self.bus.publish([message for _, message in out])
        return out

    async def _open_lifetimes(self) -> list[str]:
        # PAUSED too: a lifetime whose one branch waits for a person has
        # other branches in flight, and a paused one finishes what it began.
        return [
            s.lifetime_id
            for status in (pb.LIFETIME_STATUS_RUNNING, pb.LIFETIME_STATUS_PAUSED)
            for s in await self.store.list_lifetimes(status=status, limit=100_000)
        ]

    async def _pending_messages(
        self, lifetime_ids: Iterable[str], graph_ids: Collection[str] | None = None
    ) -> list[Message]:
        """The dispatched and unanswered inputs of these lifetimes, under their
        original input ids (so a run that happened already is deduplicated)."""
        return [message for _, message in await self._pending_inputs(lifetime_ids, graph_ids)]

    async def _pending_inputs(
        self, lifetime_ids: Iterable[str], graph_ids: Collection[str] | None = None
    ) -> list[tuple[str, Message]]:
        """``_pending_messages`` with the input id of each."""
        out: list[tuple[str, Message]] = []
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
                message = Message(
                    self.topics.inputs(node_input.kind, state.tenant_id),
                    lifetime_id,
                    self.signer.signed(node_input),
                )
                out.append((node_input.input_id, message))
        return out
