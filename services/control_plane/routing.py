"""Routing: which node runs next. Pure functions, no I/O.

The control plane calls these live; rebuilding a lifetime's state after a
restart calls the same functions over the recorded log, and replay compares
what they derive with what was recorded. Every output is deterministic given
the inputs (event ids and input ids are derived, never random); only the
``now`` timestamps differ, and replay ignores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tickrail.sdk._envelope import execution_of
from tickrail.sdk._timestamps import stamp
from tickrail.sdk.choice import choice_problem, sends_of
from tickrail.sdk.pb import envelope_pb2 as pb

from .state import FINAL_STATUSES, BranchPath, Dag, HeldSend, LifetimeState, index_graph

REJECT, PAUSE, ABORT = "REJECT_EXECUTION", "PAUSE_LIFETIME", "ABORT_LIFETIME"
_SEVERITY = {REJECT: 1, PAUSE: 2, ABORT: 3}


@dataclass(slots=True)
class Decision:
    """What one routing step produced: events to append, then inputs to publish."""

    events: list[pb.LifetimeEvent] = field(default_factory=list)
    dispatch: list[pb.NodeInput] = field(default_factory=list)

    def extend(self, other: Decision) -> None:
        self.events.extend(other.events)
        self.dispatch.extend(other.dispatch)


def _event(state: LifetimeState, suffix: str, now: float, **kind: object) -> pb.LifetimeEvent:
    # Fields set one by one: upb's keyword constructor costs more than the sets.
    event = pb.LifetimeEvent(**kind) if kind else pb.LifetimeEvent()  # type: ignore[arg-type]
    lifetime_id = state.lifetime_id
    event.event_id = f"{lifetime_id}/{suffix}"
    event.lifetime_id = lifetime_id
    event.tenant_id = state.tenant_id
    stamp(event.created_at, int(now * 1e9))  # in place: a Timestamp passed in is copied
    return event


# ---- starting -------------------------------------------------------------


def start(command: pb.LifetimeCommand, now: float) -> tuple[LifetimeState, Decision]:
    """Create a lifetime from a start command and dispatch its entry node."""
    begin = command.start
    state = LifetimeState(
        lifetime_id=command.lifetime_id,
        tenant_id=command.tenant_id,
        graph=index_graph(begin.graph),
        started_at=now,
        input=begin.input,
    )
    decision = Decision()
    decision.events.append(
        _event(
            state,
            "started",
            now,
            started=pb.LifetimeStarted(graph=begin.graph, input=begin.input, labels=begin.labels),
        )
    )
    entry = begin.graph.entry
    node_input = _dispatch(state, entry, pb.EDGE_KIND_UNSPECIFIED, [], [], now, decision, "start")
    if node_input is not None:
        node_input.input.CopyFrom(begin.input)
    return state, decision


# ---- routing one execution -----------------------------------------------


def route(
    state: LifetimeState,
    envelope: pb.ExecutionEnvelope,
    guardrails: list[pb.GuardrailDecision],
    now: float,
    execution: pb.TaskExecution | pb.PlanExecution | None = None,
) -> Decision:
    """Apply one recorded execution (and the guardrail verdicts on it) to the lifetime.

    ``execution`` is the envelope's execution when the caller has it already.
    """
    if execution is None:
        execution = execution_of(envelope)
    header = execution.header
    exec_id = header.exec_id  # read once: each read of a protobuf field builds a new str
    decision = Decision()
    if exec_id in state.seen and not _is_deferred(state, exec_id):
        return decision  # a redelivered reference: already judged
    if state.terminal:
        return decision  # late work of a finished lifetime is recorded, not routed
    state.seen.add(exec_id)

    strongest: pb.GuardrailDecision | None = None
    if guardrails:  # none, mostly: then nothing below applies
        for verdict, suffix in zip(guardrails, _unique(v.rule for v in guardrails), strict=True):
            decision.events.append(
                _event(state, f"guardrail/{header.exec_id}/{suffix}", now, guardrail=verdict)
            )
        strongest = max(guardrails, key=lambda v: _SEVERITY.get(v.action, 0))
    action = strongest.action if strongest is not None else ""
    if action == ABORT:
        _terminate(state, decision, now, header.exec_id, aborted=_why(strongest))
        return decision
    if action == PAUSE:
        state.held = True
        state.sync_status()
        if header.status in FINAL_STATUSES:
            state.deferred.append(envelope)
        decision.events.append(
            _event(
                state,
                f"paused/{header.exec_id}",
                now,
                paused=pb.LifetimePaused(exec_id=header.exec_id, reason=_why(strongest)),
            )
        )
        if header.status in FINAL_STATUSES:
            return decision

    if header.status == pb.EXECUTION_STATUS_RETRYING:
        note = f"attempt {header.attempt} failed, retrying: {_error_of(execution)}"
        decision.events.append(_routed(state, header, now, note=note, suffix="retrying"))
        return decision
    if header.status == pb.EXECUTION_STATUS_WAITING:
        # A guardrail pause on this execution already took ``paused/{exec_id}``.
        _park(state, execution, now, decision, "asked" if action == PAUSE else "paused")
        # The last running branch asking a person leaves nothing to run: say so,
        # as when a branch finishes while the others wait.
        _note_idle(state, decision, now, header.exec_id)
        return decision
    if state.held:
        if not _is_deferred(state, header.exec_id):
            state.deferred.append(envelope)
            decision.events.append(
                _routed(state, header, now, note="lifetime is PAUSED", deferred=True)
            )
        return decision

    if state.deferred:
        _undefer(state, exec_id)
    state.pending.pop(header.input_id, None)
    if action == REJECT:
        note = f"rejected by guardrail {strongest.rule!r}: {strongest.message}"  # type: ignore[union-attr]
        decision.events.append(_routed(state, header, now, note=note))
    elif isinstance(execution, pb.TaskExecution):
        _route_task(state, execution, now, decision)
    else:
        _route_plan(state, execution, now, decision)
    # Both return at once unless nothing is pending, or a branch waits for a person.
    if not state.pending:
        _fail_if_stalled(state, decision, now, exec_id)
    if state.waiting:
        _note_idle(state, decision, now, exec_id)
    return decision


def _park(
    state: LifetimeState,
    execution: pb.TaskExecution | pb.PlanExecution,
    now: float,
    decision: Decision,
    kind: str,
) -> None:
    """A node asked a person for input: its branch waits, the lifetime shows PAUSED."""
    header = execution.header
    prompt = execution.result.human_prompt if isinstance(execution, pb.TaskExecution) else ""
    node_input = state.pending.get(header.input_id, pb.NodeInput(input_id=header.input_id))
    state.waiting[header.exec_id] = node_input
    state.sync_status()
    decision.events.append(_routed(state, header, now, note=f"waiting for a person: {prompt}"))
    decision.events.append(
        _event(
            state,
            f"{kind}/{header.exec_id}",
            now,
            paused=pb.LifetimePaused(
                exec_id=header.exec_id, reason=f"{header.name!r} asks: {prompt}"
            ),
        )
    )


def _route_task(
    state: LifetimeState, execution: pb.TaskExecution, now: float, decision: Decision
) -> None:
    header, result = execution.header, execution.result
    name = header.name
    failed = header.status != pb.EXECUTION_STATUS_SUCCEEDED
    if failed and name not in state.graph.continue_on_failure:
        decision.events.append(_routed(state, header, now, note="task failed"))
        reason = (
            f"Task {name!r} failed after {header.attempt} attempt(s): "
            f"{result.error_type or 'Error'}: {result.error}"
        )
        _terminate(
            state,
            decision,
            now,
            header.exec_id,
            failed=reason,
            error_type=result.error_type,
        )
        return
    onward = state.graph.out[name]
    has_final = name in state.graph.finals
    if result.finish and not has_final:
        problem = (
            f"Task {name!r} returned Finish(...) but has no FINAL edge; add final({name!r}) "
            "to let it end the lifetime"
        )
        decision.events.append(_routed(state, header, now, note=problem))
        _terminate(state, decision, now, header.exec_id, failed=problem, error_type="RoutingError")
        return
    if has_final and (result.finish or not onward):
        decision.events.append(_routed(state, header, now, edge=pb.EDGE_KIND_FINAL))
        if failed:
            _terminate(
                state,
                decision,
                now,
                header.exec_id,
                failed=f"Task {name!r} failed on its FINAL edge: {result.error}",
            )
        else:
            _complete(state, decision, now, header.exec_id, result.output)
        return
    ((target, kind),) = onward.items()
    if kind != pb.EDGE_KIND_JOIN and not state.dags:
        # No fan-out waits for this run (``_send_done`` finds nothing): the result is
        # copied once, into the next input's upstream, not into a message copied again.
        event = _routed(state, header, now, edge=kind)
        decision.events.append(event)
        exec_id = header.exec_id
        dispatched = _dispatch(
            state,
            target,
            kind,
            list(header.branch),
            [],
            now,
            decision,
            exec_id,
            routed=event,
            source=name,
        )
        if dispatched is not None:
            dispatched.parent_exec_ids.append(exec_id)
            result_of = dispatched.upstream.add()
            result_of.exec_id = exec_id
            result_of.name = name
            result_of.status = header.status
            result_of.result.CopyFrom(result)
            if header.branch:
                result_of.branch.extend(header.branch)
            if state.graph.kinds[target] == pb.NODE_KIND_TASK:
                # Task -> Task: the first Task's result is the next Task's input.
                dispatched.input.CopyFrom(result.output)
        return
    upstream = pb.UpstreamResult(
        exec_id=header.exec_id,
        name=name,
        status=header.status,
        result=result,
        branch=header.branch,
    )
    send_id = _send_done(state, header, upstream)
    if kind == pb.EDGE_KIND_JOIN:
        routed = _arrive_at_join(state, header, target, upstream, now, decision)
    else:
        routed = _routed(state, header, now, edge=kind)
        decision.events.append(routed)
        node_input = _dispatch(
            state,
            target,
            kind,
            list(header.branch),
            [upstream],
            now,
            decision,
            header.exec_id,
            routed=routed,
            source=name,
        )
        if node_input is not None and state.graph.kinds[target] == pb.NODE_KIND_TASK:
            # Task -> Task: the first Task's result is the next Task's input.
            node_input.input.CopyFrom(result.output)
    if send_id is not None and routed is not None and not state.terminal:
        _release(state, header.branch[-1].fanout_id, now, decision, routed)


def _send_done(
    state: LifetimeState, header: pb.ExecutionHeader, upstream: pb.UpstreamResult
) -> str | None:
    """Record that a send others wait for finished; its send id, or None."""
    if not header.branch or not state.dags:
        return None
    dag = state.dags.get(header.branch[-1].fanout_id)
    if dag is None or header.input_id not in dag.inputs:
        return None
    send_id = dag.inputs.pop(header.input_id)
    upstream.send_id = send_id
    if send_id:
        dag.done[send_id] = upstream
    return send_id


def _rekey_send(state: LifetimeState, asked: pb.NodeInput, input_id: str) -> None:
    """A send others wait for is re-run under a new input id (a question answered)."""
    dag = state.dags.get(asked.branch[-1].fanout_id) if asked.branch else None
    if dag is not None and asked.input_id in dag.inputs:
        dag.inputs[input_id] = dag.inputs.pop(asked.input_id)


def _release(
    state: LifetimeState, fanout_id: str, now: float, decision: Decision, routed: pb.LifetimeEvent
) -> None:
    """Dispatch every held send of this fan-out whose dependencies have all finished."""
    dag = state.dags[fanout_id]
    for index in sorted(dag.held):
        held = dag.held[index]
        if not all(dep in dag.done for dep in held.send.after):
            continue
        del dag.held[index]
        upstream = [dag.done[dep] for dep in held.send.after]
        node_input = _dispatch(
            state,
            held.send.task,
            pb.EDGE_KIND_PARALLEL,
            held.branch,
            upstream,
            now,
            decision,
            held.plan_exec_id,
            routed=routed,
            source=held.plan,
        )
        if node_input is None:
            return
        node_input.input.CopyFrom(held.send.input)
        dag.inputs[node_input.input_id] = held.send.id
    if not dag.held:
        del state.dags[fanout_id]


def _arrive_at_join(
    state: LifetimeState,
    header: pb.ExecutionHeader,
    target: str,
    upstream: pb.UpstreamResult,
    now: float,
    decision: Decision,
) -> pb.LifetimeEvent | None:
    if not header.branch:
        decision.events.append(_routed(state, header, now, edge=pb.EDGE_KIND_JOIN))
        _terminate(
            state,
            decision,
            now,
            header.exec_id,
            failed=f"Task {header.name!r} took a JOIN edge outside any fan-out",
            error_type="RoutingError",
        )
        return None
    frame = header.branch[-1]
    key = (frame.fanout_id, target)
    arrived = state.joins.setdefault(key, {})
    arrived[frame.index] = upstream
    routed = _routed(state, header, now, edge=pb.EDGE_KIND_JOIN)
    decision.events.append(routed)
    if len(arrived) < frame.width:
        routed.routed.note = f"waiting at {target!r}: {len(arrived)} of {frame.width} branches"
        return routed
    del state.joins[key]
    _fold_iterations(state, list(header.branch[:-1]), frame.fanout_id)
    results = [arrived[i] for i in sorted(arrived)]
    _dispatch(
        state,
        target,
        pb.EDGE_KIND_JOIN,
        list(header.branch[:-1]),
        results,
        now,
        decision,
        header.exec_id,
        routed=routed,
        source=header.name,
    )
    return routed


def _route_plan(
    state: LifetimeState, execution: pb.PlanExecution, now: float, decision: Decision
) -> None:
    header, result = execution.header, execution.result
    name = header.name
    if header.status != pb.EXECUTION_STATUS_SUCCEEDED:
        decision.events.append(_routed(state, header, now, note="plan failed"))
        _terminate(
            state,
            decision,
            now,
            header.exec_id,
            failed=f"Plan {name!r} failed: {result.error_type or 'Error'}: {result.error}",
            error_type=result.error_type,
        )
        return
    edges = state.graph.out[name]
    sends = [] if result.finish else sends_of(result)
    problem = choice_problem(
        name,
        result,
        edges,
        has_final=name in state.graph.finals,
        max_fanout=state.graph.max_fanout,
        sends=sends,
    )
    if problem:
        decision.events.append(_routed(state, header, now, note=problem))
        _terminate(state, decision, now, header.exec_id, failed=problem, error_type="RoutingError")
        return
    if result.finish:
        decision.events.append(_routed(state, header, now, edge=pb.EDGE_KIND_FINAL))
        _complete(state, decision, now, header.exec_id, result.output)
        return
    first = edges[sends[0].task]
    fan_out = first == pb.EDGE_KIND_PARALLEL
    routed = _routed(state, header, now, edge=first)
    decision.events.append(routed)
    dag = Dag() if any(s.after for s in sends) else None
    for index, send in enumerate(sends):
        branch = list(header.branch)
        if fan_out:
            branch.append(pb.BranchFrame(fanout_id=header.input_id, index=index, width=len(sends)))
        if dag is not None and send.after:
            dag.held[index] = HeldSend(send, branch, name, header.exec_id)
            continue
        node_input = _dispatch(
            state,
            send.task,
            edges[send.task],
            branch,
            [],
            now,
            decision,
            header.exec_id,
            routed=routed,
            source=name,
        )
        if node_input is None:
            return
        node_input.input.CopyFrom(send.input)
        if dag is not None:
            dag.inputs[node_input.input_id] = send.id
    if dag is not None:
        state.dags[header.input_id] = dag


# ---- commands -------------------------------------------------------------


def _first_time(state: LifetimeState, command_id: str) -> bool:
    """Record a command as applied; False if it was already (a redelivery).

    A redelivered command must not act twice: its event id is the one already
    in the log, which the store would drop, and replay would then miss it.
    """
    key = f"command/{command_id}"
    if key in state.seen:
        return False
    state.seen.add(key)
    return True


def pause(state: LifetimeState, reason: str, now: float, command_id: str) -> Decision:
    decision = Decision()
    if state.terminal or state.held or not _first_time(state, command_id):
        return decision
    state.held = True
    state.sync_status()
    decision.events.append(
        _event(state, f"paused/{command_id}", now, paused=pb.LifetimePaused(reason=reason))
    )
    return decision


def waiting_for(state: LifetimeState, command: pb.LifetimeResumed) -> str:
    """The WAITING execution a resume answers ('' when it answers none)."""
    if command.exec_id:
        return command.exec_id if command.exec_id in state.waiting else ""
    if command.HasField("human_input"):
        return next(iter(state.waiting)) if len(state.waiting) == 1 else ""
    return ""


def resume(
    state: LifetimeState, command: pb.LifetimeResumed, now: float, command_id: str
) -> Decision:
    """Answer a WAITING branch (with the person's input), or lift a pause.

    Lifting a pause routes every execution held while it lasted. Answering a
    question re-runs the node that asked, with the answer in its context.
    """
    decision = Decision()
    if state.terminal:
        return decision
    answered = waiting_for(state, command)
    if answered:
        if not _first_time(state, command_id):
            return decision
        asked = state.waiting.pop(answered)
        decision.events.append(_event(state, f"resumed/{command_id}", now, resumed=command))
        state.pending.pop(asked.input_id, None)
        # Its own id: ``routed/{answered}`` already records the question itself.
        routed = _event(
            state,
            f"answered/{answered}",
            now,
            routed=pb.ExecutionRouted(
                exec_id=answered,
                name=asked.name,
                status=pb.EXECUTION_STATUS_WAITING,
                edge=asked.edge_taken,
                note="answered, running again",
            ),
        )
        decision.events.append(routed)
        again = _dispatch(
            state,
            asked.name,
            asked.edge_taken,
            list(asked.branch),
            list(asked.upstream),
            now,
            decision,
            answered,
            routed=routed,
            iteration=asked.iteration,
        )
        if again is not None:
            again.input.CopyFrom(asked.input)
            again.parent_exec_ids[:] = list(asked.parent_exec_ids)
            again.human_input.CopyFrom(command.human_input)
            again.answers_exec_id = answered
            again.from_node, again.from_exec_id = asked.from_node, asked.from_exec_id
            _rekey_send(state, asked, again.input_id)
        state.sync_status()
        return decision
    if not state.held or not _first_time(state, command_id):
        return decision
    state.held = False
    state.sync_status()
    decision.events.append(_event(state, f"resumed/{command_id}", now, resumed=command))
    for envelope in list(state.deferred):
        if state.held or state.terminal:
            break
        decision.extend(route(state, envelope, [], now))
    if not state.terminal:
        _fail_if_stalled(state, decision, now, f"resume/{command_id}")
    return decision


def abort(state: LifetimeState, reason: str, now: float, command_id: str) -> Decision:
    decision = Decision()
    if not state.terminal and _first_time(state, command_id):
        _terminate(state, decision, now, "", aborted=reason, suffix=f"aborted/{command_id}")
    return decision


def fail(
    state: LifetimeState, reason: str, now: float, error_type: str = "InternalError"
) -> Decision:
    """Fail the lifetime for a reason outside its executions (an internal error)."""
    decision = Decision()
    if not state.terminal:
        _terminate(state, decision, now, "", failed=reason, error_type=error_type)
    return decision


# ---- helpers --------------------------------------------------------------


def _dispatch(
    state: LifetimeState,
    name: str,
    edge: pb.EdgeKind,
    branch: list[pb.BranchFrame],
    upstream: list[pb.UpstreamResult],
    now: float,
    decision: Decision,
    cause: str,
    routed: pb.LifetimeEvent | None = None,
    iteration: int | None = None,
    source: str = "",
) -> pb.NodeInput | None:
    """Create the input for one node run, unless a loop cap stops the lifetime.

    ``iteration`` runs a node as an iteration already counted (a question
    answered, or another run of a mapped Task), without counting it again.
    ``source`` is the node whose execution ``cause`` dispatches this one.
    """
    graph = state.graph
    again = iteration is not None
    if iteration is None:
        iteration = (
            _iteration_so_far(state, name, branch) + 1
            if branch
            else state.iterations.get((name, ()), 0) + 1
        )
    if iteration > graph.max_iterations or state.steps + 1 > graph.max_steps:
        spec = graph.spec
        rule, limit, seen = (
            ("graph.max_iterations", spec.max_iterations, iteration)
            if iteration > spec.max_iterations
            else ("graph.max_steps", spec.max_steps, state.steps + 1)
        )
        verdict = pb.GuardrailDecision(
            exec_id=cause,
            rule=rule,
            policy_version=f"{spec.graph_id}@{spec.version}",
            action=ABORT,
            scope="lifetime",
            message=f"{name!r} would run past the graph's {rule.split('.')[1]} cap of {limit}",
            observed={"iteration" if "iter" in rule else "steps": float(seen)},
        )
        decision.events.append(_event(state, f"guardrail/{cause}/{rule}", now, guardrail=verdict))
        _terminate(state, decision, now, cause, aborted=verdict.message)
        return None
    if not again:
        state.iterations[(name, _path(branch) if branch else ())] = iteration
    state.steps += 1
    input_id = f"{state.lifetime_id}.{state.next_step}"
    state.next_step += 1
    if routed is None:
        routed = _event(state, f"routed/{cause}", now)
        routed.routed.SetInParent()
        decision.events.append(routed)
    # Built in place in the recorded event (a NodeInput built apart and appended
    # would be copied whole, its upstream results with it).
    node_input = routed.routed.dispatched.add()
    node_input.input_id = input_id
    node_input.lifetime_id = state.lifetime_id
    node_input.tenant_id = state.tenant_id
    node_input.graph_id = graph.graph_id
    node_input.graph_version = graph.version
    node_input.name = name
    node_input.kind = graph.kinds[name]
    node_input.iteration = iteration
    node_input.edge_taken = edge
    if upstream:
        node_input.parent_exec_ids.extend([u.exec_id for u in upstream])
        node_input.upstream.extend(upstream)
    if branch:
        node_input.branch.extend(branch)
    stamp(node_input.created_at, int(now * 1e9))
    if source:
        node_input.from_node = source
        node_input.from_exec_id = cause
    node_input.graph_digest = graph.digest
    state.pending[input_id] = node_input
    decision.dispatch.append(node_input)
    return node_input


def _path(branch: Sequence[pb.BranchFrame]) -> BranchPath:
    return tuple((f.fanout_id, f.index) for f in branch)


def _iteration_so_far(state: LifetimeState, name: str, branch: Sequence[pb.BranchFrame]) -> int:
    """How often ``name`` ran along this branch: in it, and in the branches it came from.

    Sibling branches of a fan-out count apart, so mapping one Task over N
    inputs makes N runs of one iteration (of it and of the nodes after it in
    each branch), and ``max_iterations`` still catches a loop inside a branch.
    """
    if not branch:
        return state.iterations.get((name, ()), 0)
    path = _path(branch)
    return max(state.iterations.get((name, path[:k]), 0) for k in range(len(path) + 1))


def _fold_iterations(state: LifetimeState, parent: list[pb.BranchFrame], fanout_id: str) -> None:
    """A fan-out joined: its branches' counts become the parent's (the most any reached)."""
    base = _path(parent)
    depth = len(base)
    for key in [k for k in state.iterations if len(k[1]) > depth]:
        name, path = key
        if path[:depth] == base and path[depth][0] == fanout_id:
            count = state.iterations.pop(key)
            state.iterations[(name, base)] = max(state.iterations.get((name, base), 0), count)


def _routed(
    state: LifetimeState,
    header: pb.ExecutionHeader,
    now: float,
    *,
    edge: pb.EdgeKind = pb.EDGE_KIND_UNSPECIFIED,
    note: str = "",
    deferred: bool = False,
    suffix: str = "routed",
) -> pb.LifetimeEvent:
    kind = "deferred" if deferred else suffix
    event = _event(state, f"{kind}/{header.exec_id}", now)
    # Set in place: an ExecutionRouted passed to the constructor would be copied.
    routed = event.routed
    routed.SetInParent()
    routed.exec_id = header.exec_id
    routed.name = header.name
    routed.status = header.status
    if edge:
        routed.edge = edge
    if note:
        routed.note = note
    if deferred:
        routed.deferred = deferred
    return event


def _complete(
    state: LifetimeState, decision: Decision, now: float, exec_id: str, output: pb.Payload
) -> None:
    state.status = pb.LIFETIME_STATUS_COMPLETED
    state.output = output
    state.pending.clear()
    state.waiting.clear()
    decision.events.append(
        _event(
            state, "completed", now, completed=pb.LifetimeCompleted(exec_id=exec_id, output=output)
        )
    )


def _terminate(
    state: LifetimeState,
    decision: Decision,
    now: float,
    exec_id: str,
    *,
    failed: str = "",
    aborted: str = "",
    error_type: str = "",
    suffix: str = "",
) -> None:
    state.pending.clear()
    state.waiting.clear()
    if aborted:
        state.status, state.reason = pb.LIFETIME_STATUS_ABORTED, aborted
        decision.events.append(
            _event(
                state,
                suffix or "aborted",
                now,
                aborted=pb.LifetimeAborted(exec_id=exec_id, reason=aborted),
            )
        )
    else:
        state.status, state.reason = pb.LIFETIME_STATUS_FAILED, failed
        decision.events.append(
            _event(
                state,
                "failed",
                now,
                failed=pb.LifetimeFailed(exec_id=exec_id, reason=failed, error_type=error_type),
            )
        )


def _note_idle(state: LifetimeState, decision: Decision, now: float, cause: str) -> None:
    """Say so when nothing can run until a person answers (watchers stop waiting)."""
    if state.terminal or state.held or not state.waiting or state.deferred:
        return
    asked = {node_input.input_id for node_input in state.waiting.values()}
    if set(state.pending) <= asked:
        names = ", ".join(f"{exec_id} ({i.name})" for exec_id, i in state.waiting.items())
        decision.events.append(
            _event(
                state,
                f"idle/{cause}",
                now,
                paused=pb.LifetimePaused(reason=f"waiting for a person at {names}", idle=True),
            )
        )


def _fail_if_stalled(state: LifetimeState, decision: Decision, now: float, cause: str) -> None:
    if state.status == pb.LIFETIME_STATUS_RUNNING and not state.pending and not state.deferred:
        waiting = ", ".join(f"{plan!r}" for _, plan in state.joins) or "nothing"
        held = [h.send.id or h.send.task for dag in state.dags.values() for h in dag.held.values()]
        if held:  # e.g. a dependency's result was rejected by a guardrail
            waiting += f"; sends {', '.join(map(repr, held))} wait for runs that will not finish"
        _terminate(
            state,
            decision,
            now,
            cause,
            failed=f"nothing left to run and no FINAL edge taken (waiting at: {waiting})",
            error_type="StalledLifetime",
        )


def _unique(names: Iterable[str]) -> list[str]:
    """The names, with ``#2``, ``#3``... on repeats (two policies may share a rule name)."""
    count: dict[str, int] = {}
    out = []
    for name in names:
        count[name] = count.get(name, 0) + 1
        out.append(name if count[name] == 1 else f"{name}#{count[name]}")
    return out


def _why(verdict: pb.GuardrailDecision | None) -> str:
    if verdict is None:
        return ""
    return f"guardrail {verdict.rule!r} ({verdict.action}): {verdict.message}"


def _error_of(execution: pb.TaskExecution | pb.PlanExecution) -> str:
    result = execution.result
    return f"{result.error_type or 'Error'}: {result.error}"


def _is_deferred(state: LifetimeState, exec_id: str) -> bool:
    return any(execution_of(e).header.exec_id == exec_id for e in state.deferred)


def _undefer(state: LifetimeState, exec_id: str) -> None:
    if not state.deferred:
        return
    state.deferred = [e for e in state.deferred if execution_of(e).header.exec_id != exec_id]
