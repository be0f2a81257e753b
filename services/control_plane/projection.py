"""Rebuild a lifetime's state from its recorded log, with the routing code itself.

Each recorded event that names an execution is replayed through ``route``
with the guardrail verdicts recorded for it, so the rebuilt state is exactly
what the live control plane held (the same code derives it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from tickrail.sdk._timestamps import seconds_of
from tickrail.sdk.pb import envelope_pb2 as pb

from .routing import Decision, abort, fail, pause, resume, route, start
from .state import LifetimeState


def event_time(event: pb.LifetimeEvent) -> float:
    return seconds_of(event.created_at)


def rebuild(
    events: Iterable[pb.LifetimeEvent],
    executions: Mapping[str, pb.ExecutionEnvelope],
) -> LifetimeState | None:
    """Fold the log into a LifetimeState; None when it has no ``started`` event."""
    return fold(events, executions)


def fold(
    events: Iterable[pb.LifetimeEvent],
    executions: Mapping[str, pb.ExecutionEnvelope],
    on_decision: Callable[[pb.LifetimeEvent, Decision], None] | None = None,
) -> LifetimeState | None:
    """Drive the routing functions with the recorded inputs, in recorded order.

    Inputs are the start command, the executions, the guardrail verdicts and
    the commands; everything else is re-derived. ``on_decision`` receives the
    recorded event that triggered each step and what the code derived from it
    (replay compares the two).
    """
    state: LifetimeState | None = None
    verdicts: dict[str, list[pb.GuardrailDecision]] = defaultdict(list)
    report = on_decision or (lambda _event, _decision: None)
    for event in events:
        kind = event.WhichOneof("kind")
        now = event_time(event)
        if kind == "started":
            command = pb.LifetimeCommand(
                lifetime_id=event.lifetime_id,
                tenant_id=event.tenant_id,
                start=pb.StartLifetime(
                    graph=event.started.graph,
                    input=event.started.input,
                    labels=event.started.labels,
                ),
            )
            state, decision = start(command, now)
            decision.events[0].started.CopyFrom(event.started)  # the command, not a decision
            report(event, decision)
            continue
        if state is None or kind is None:
            continue
        if kind == "guardrail":
            # Graph caps are re-derived by routing itself; policy verdicts are inputs.
            if not event.guardrail.rule.startswith("graph."):
                verdicts[event.guardrail.exec_id].append(event.guardrail)
            continue
        if kind == "resumed":
            report(event, resume(state, event.resumed, now, command_id(event, "resumed")))
            continue
        if kind == "paused" and event.paused.idle:
            continue  # informational, re-derived by routing
        if kind == "refused":
            continue  # a refused envelope changed nothing
        exec_id = getattr(event, kind).exec_id
        if exec_id in executions:
            report(event, route(state, executions[exec_id], verdicts.pop(exec_id, []), now))
        elif not exec_id and kind == "paused":
            report(event, pause(state, event.paused.reason, now, command_id(event, "paused")))
        elif not exec_id and kind == "aborted":
            report(event, abort(state, event.aborted.reason, now, command_id(event, "aborted")))
        elif not exec_id and kind == "failed":
            # An internal error failed the lifetime (ControlPlane._fault): a recorded fact.
            report(event, fail(state, event.failed.reason, now, event.failed.error_type))
    return state


def command_id(event: pb.LifetimeEvent, kind: str) -> str:
    """The command id inside a command event's id (``{lifetime}/{kind}/{command}``)."""
    return event.event_id.partition(f"/{kind}/")[2]
