"""Replay: re-derive a lifetime's decisions from its log and compare with the record.

Replay never writes anything. It feeds the recorded inputs (the start
command, executions, guardrail verdicts, commands) through the routing code
the control plane runs, in the recorded order, and checks that every event
it derives equals the recorded one; the first difference is reported with
the event where it happened. With ``rerun_plans`` it also runs the Plan code
again against the recorded Task results (no Task runs, no model is called)
and reports every Plan whose decision differs: a nondeterministic or changed
plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf import text_format
from google.protobuf.message import Message

from tickrail.adapters import BlobStore, StateStore
from tickrail.sdk._envelope import kind_of
from tickrail.sdk.drift import drift_message
from tickrail.sdk.errors import ConfigurationError, LifetimeNotFoundError
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.node import Plan
from tickrail.sdk.pb import envelope_pb2 as pb

from .projection import fold
from .routing import Decision


@dataclass(frozen=True, slots=True)
class Divergence:
    seq: int  # the recorded event's store sequence number (0 if the log ended early)
    event_id: str
    expected: str  # what is recorded
    got: str  # what the code derives now


@dataclass(frozen=True, slots=True)
class PlanDifference:
    exec_id: str
    name: str
    expected: str
    got: str


@dataclass(slots=True)
class ReplayReport:
    ok: bool
    checked: int  # recorded events compared
    divergence: Divergence | None = None
    plan_differences: list[PlanDifference] = field(default_factory=list)
    plans_rerun: int = 0


async def replay_lifetime(
    store: StateStore,
    lifetime_id: str,
    *,
    graphs: Sequence[AgentGraph] = (),
    rerun_plans: bool = False,
    blobs: BlobStore | None = None,
) -> ReplayReport:
    """Replay one recorded lifetime (see the module docstring)."""
    records = await store.events(lifetime_id)
    if not records:
        raise LifetimeNotFoundError(f"no lifetime {lifetime_id!r} is recorded")
    events = []
    for record in records:
        event = pb.LifetimeEvent.FromString(record.body)
        event.seq = record.seq
        events.append(event)
    executions = {
        r.exec_id: pb.ExecutionEnvelope.FromString(r.envelope)
        for r in await store.executions(lifetime_id)
    }
    report = compare(events, executions)
    if rerun_plans:
        graph = _graph_for(events[0], graphs)
        report.plan_differences, report.plans_rerun = await rerun(events, executions, graph, blobs)
        report.ok = report.ok and not report.plan_differences
    return report


def compare(
    events: Sequence[pb.LifetimeEvent], executions: dict[str, pb.ExecutionEnvelope]
) -> ReplayReport:
    derived: list[pb.LifetimeEvent] = []

    def collect(_trigger: pb.LifetimeEvent, decision: Decision) -> None:
        derived.extend(decision.events)

    # Refusals are observations, not decisions: nothing derives them.
    events = [e for e in events if e.WhichOneof("kind") != "refused"]
    fold(events, executions, collect)
    for index in range(max(len(events), len(derived))):
        expected = events[index] if index < len(events) else None
        got = derived[index] if index < len(derived) else None
        if expected is None or got is None or _canonical(expected) != _canonical(got):
            anchor = expected or events[-1]
            return ReplayReport(
                ok=False,
                checked=index,
                divergence=Divergence(
                    seq=anchor.seq if expected is not None else 0,
                    event_id=anchor.event_id if expected is not None else "",
                    expected=_summary(expected) if expected is not None else "(nothing recorded)",
                    got=_summary(got) if got is not None else "(nothing derived)",
                ),
            )
    return ReplayReport(ok=True, checked=len(events))


def _canonical(event: pb.LifetimeEvent) -> bytes:
    """The event without what legitimately differs between runs: times and seq."""
    copy = pb.LifetimeEvent()
    copy.CopyFrom(event)
    copy.ClearField("created_at")
    copy.ClearField("seq")
    if copy.WhichOneof("kind") == "routed":
        for node_input in copy.routed.dispatched:
            node_input.ClearField("created_at")
    return copy.SerializeToString(deterministic=True)


def _summary(event: pb.LifetimeEvent) -> str:
    """One line that shows what a decision decided (the ids are in event_id)."""
    kind = event.WhichOneof("kind") or "?"
    if kind == "routed":
        r = event.routed
        sent = ", ".join(f'name: "{d.name}"' for d in r.dispatched)
        edge = pb.EdgeKind.Name(r.edge).removeprefix("EDGE_KIND_")
        return (
            f"routed {r.name or 'start'} ({pb.ExecutionStatus.Name(r.status)}) edge {edge} "
            f"-> [{sent}]" + (f" note: {r.note}" if r.note else "")
        )
    return f"{kind} {_show(getattr(event, kind))}"


def _show(message: Message, limit: int = 400) -> str:
    text = text_format.MessageToString(message, as_one_line=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _graph_for(started: pb.LifetimeEvent, graphs: Sequence[AgentGraph]) -> AgentGraph:
    spec = started.started.graph
    for graph in graphs:
        if (graph.graph_id, graph.version) == (spec.graph_id, spec.version):
            drift = drift_message(spec, graph.spec)
            if drift:
                raise ConfigurationError(f"cannot re-run the plans: {drift}")
            return graph
    raise ConfigurationError(
        f"re-running plans needs the code of {spec.graph_id}@{spec.version}; "
        "pass the graph it was started with"
    )


async def rerun(
    events: Sequence[pb.LifetimeEvent],
    executions: dict[str, pb.ExecutionEnvelope],
    graph: AgentGraph,
    blobs: BlobStore | None,
) -> tuple[list[PlanDifference], int]:
    """Run each recorded Plan again on its recorded input; no Task runs."""
    from tickrail.services.executor.run_node import attempt, prepare

    inputs = {
        node_input.input_id: node_input
        for event in events
        if event.WhichOneof("kind") == "routed"
        for node_input in event.routed.dispatched
    }
    differences: list[PlanDifference] = []
    rerun_count = 0
    for envelope in executions.values():
        if kind_of(envelope) != "plan":
            continue
        recorded = envelope.plan
        header = recorded.header
        node_input = inputs.get(header.input_id)
        node = graph.nodes.get(header.name)
        if node_input is None or not isinstance(node, Plan):
            continue
        prepared = await prepare(node_input, blobs)
        again, _ = await attempt(node, node_input, prepared, header.attempt, False)
        rerun_count += 1
        expected, got = _decision(recorded.result), _decision(again.plan.result)
        if expected != got:
            differences.append(
                PlanDifference(header.exec_id, header.name, _show(expected), _show(got))
            )
    return differences, rerun_count


def _decision(result: pb.PlanResult) -> pb.PlanResult:
    """The part of a PlanResult that is the Plan's decision (not the echoed upstream)."""
    return pb.PlanResult(
        next_task_names=result.next_task_names,
        task_inputs=result.task_inputs,
        sends=result.sends,
        finish=result.finish,
        output=result.output,
        error_type=result.error_type,
    )
