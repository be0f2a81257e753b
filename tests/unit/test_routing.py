"""Routing is a pure function: drive it directly with synthetic executions."""

from __future__ import annotations

import pytest

from tickrail.sdk import AgentGraph, final, normal
from tickrail.sdk._payload import encode
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.control_plane.projection import rebuild
from tickrail.services.control_plane.routing import Decision, abort, pause, resume, route, start
from tickrail.services.control_plane.state import LifetimeState

from .graphs import Gather, Loop, Start, Step, Work, fan_out_graph, loop_graph

NOW = 1_800_000_000.0


def begin(graph: AgentGraph, value: object = None) -> tuple[LifetimeState, Decision]:
    command = pb.LifetimeCommand(
        lifetime_id="L1",
        tenant_id="t1",
        start=pb.StartLifetime(graph=graph.spec, input=encode(value)),
    )
    return start(command, NOW)


def header(node_input: pb.NodeInput, status: int, attempt: int = 1) -> pb.ExecutionHeader:
    return pb.ExecutionHeader(
        name=node_input.name,
        exec_id=f"{node_input.input_id}.{attempt}",
        input_id=node_input.input_id,
        lifetime_id=node_input.lifetime_id,
        tenant_id=node_input.tenant_id,
        graph_id=node_input.graph_id,
        attempt=attempt,
        iteration=node_input.iteration,
        status=status,
        branch=node_input.branch,
        kind=node_input.kind,
    )


def task_done(
    node_input: pb.NodeInput,
    value: object = None,
    *,
    status: int = pb.EXECUTION_STATUS_SUCCEEDED,
    error: str = "",
    attempt: int = 1,
) -> pb.ExecutionEnvelope:
    result = pb.TaskResult(
        output=encode(value), error=error, error_type="ValueError" if error else ""
    )
    return pb.ExecutionEnvelope(
        task=pb.TaskExecution(header=header(node_input, status, attempt), result=result)
    )


def plan_done(
    node_input: pb.NodeInput,
    *tasks: str,
    finish: bool = False,
    output: object = None,
    status: int = pb.EXECUTION_STATUS_SUCCEEDED,
) -> pb.ExecutionEnvelope:
    result = pb.PlanResult(
        next_task_names=tasks, finish=finish, error="boom" if status == 2 else ""
    )
    if finish:
        result.output.CopyFrom(encode(output))
    return pb.ExecutionEnvelope(
        plan=pb.PlanExecution(header=header(node_input, status), result=result)
    )


def kinds(decision: Decision) -> list[str]:
    return [e.WhichOneof("kind") or "" for e in decision.events]


def test_start_dispatches_the_entry_with_the_lifetime_input() -> None:
    state, decision = begin(fan_out_graph(), {"x": 1})
    assert kinds(decision) == ["started", "routed"]
    (entry,) = decision.dispatch
    assert (entry.name, entry.kind, entry.iteration) == ("start", pb.NODE_KIND_PLAN, 1)
    assert entry.input == encode({"x": 1})
    assert state.pending == {entry.input_id: entry}


def test_parallel_fan_out_then_join_runs_the_join_once_with_every_branch() -> None:
    state, d = begin(fan_out_graph())
    d = route(state, plan_done(d.dispatch[0], "a", "b"), [], NOW)
    a, b = d.dispatch
    assert [f.index for f in a.branch] == [0] and [f.width for f in b.branch] == [2]
    assert a.edge_taken == pb.EDGE_KIND_PARALLEL
    # the second branch finishes first: the join waits for the other
    d = route(state, task_done(b, "B"), [], NOW)
    assert d.dispatch == [] and "1 of 2" in d.events[0].routed.note
    d = route(state, task_done(a, "A"), [], NOW)
    (gather,) = d.dispatch
    assert gather.name == "gather" and gather.edge_taken == pb.EDGE_KIND_JOIN
    assert [u.name for u in gather.upstream] == ["a", "b"]  # branch order, not arrival order
    assert list(gather.branch) == []  # the join pops the fan-out frame
    d = route(state, plan_done(gather, finish=True, output="done"), [], NOW)
    assert kinds(d) == ["routed", "completed"]
    assert state.status == pb.LIFETIME_STATUS_COMPLETED and state.output == encode("done")


def test_a_failed_branch_fails_the_lifetime_and_later_work_is_ignored() -> None:
    state, d = begin(fan_out_graph())
    a, b = route(state, plan_done(d.dispatch[0], "a", "b"), [], NOW).dispatch
    d = route(state, task_done(a, status=pb.EXECUTION_STATUS_FAILED, error="bad"), [], NOW)
    assert kinds(d) == ["routed", "failed"]
    assert "Task 'a' failed after 1 attempt(s): ValueError: bad" in d.events[-1].failed.reason
    assert route(state, task_done(b, "B"), [], NOW) == Decision()


def test_continue_on_failure_lets_the_join_see_the_failed_branch() -> None:
    state, d = begin(fan_out_graph(continue_on_failure=True))
    a, b = route(state, plan_done(d.dispatch[0], "a", "b"), [], NOW).dispatch
    route(state, task_done(a, status=pb.EXECUTION_STATUS_FAILED, error="bad"), [], NOW)
    (gather,) = route(state, task_done(b, "B"), [], NOW).dispatch
    assert [u.status for u in gather.upstream] == [
        pb.EXECUTION_STATUS_FAILED,
        pb.EXECUTION_STATUS_SUCCEEDED,
    ]


def test_loop_counts_iterations_and_the_cap_aborts_a_runaway() -> None:
    state, d = begin(loop_graph(10, max_iterations=3))
    node = d.dispatch[0]
    for _ in range(2):
        (step,) = route(state, plan_done(node, "step"), [], NOW).dispatch
        assert step.iteration == state.iterations[("step", ())]
        (node,) = route(state, task_done(step, {"count": 0}), [], NOW).dispatch
        assert node.iteration == state.iterations[("loop", ())]
    (step,) = route(state, plan_done(node, "step"), [], NOW).dispatch
    d = route(state, task_done(step, {"count": 0}), [], NOW)  # 'loop' would run a 4th time
    assert d.dispatch == []
    assert state.status == pb.LIFETIME_STATUS_ABORTED
    verdict = next(e.guardrail for e in d.events if e.WhichOneof("kind") == "guardrail")
    assert verdict.rule == "graph.max_iterations" and verdict.observed["iteration"] == 4


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        (
            ("nope",),
            "chose Next([nope]): 'nope' is not a target of its edges; "
            "its edges allow: a (PARALLEL), b (PARALLEL)",
        ),
        ((), "it chose no Task"),
        (("a",) * 300, "that is 300 Task runs, over the graph's max_fanout of 256"),
    ],
)
def test_an_illegal_plan_choice_fails_the_lifetime_with_a_clear_reason(
    choice: tuple[str, ...], message: str
) -> None:
    state, d = begin(fan_out_graph())
    d = route(state, plan_done(d.dispatch[0], *choice), [], NOW)
    assert state.status == pb.LIFETIME_STATUS_FAILED
    assert message in d.events[-1].failed.reason
    assert d.events[-1].failed.error_type == "RoutingError"


def test_several_tasks_over_normal_edges_is_refused() -> None:
    graph = AgentGraph(
        "pick",
        version="1.0.0",
        entry="start",
        nodes=[Start(), Work("a"), Work("b")],
        edges=[normal("start", "a"), normal("start", "b"), final("a"), final("b")],
    )
    state, d = begin(graph)
    d = route(state, plan_done(d.dispatch[0], "a", "b"), [], NOW)
    assert "only PARALLEL edges run several Tasks" in d.events[-1].failed.reason


def test_finish_without_a_final_edge_fails() -> None:
    graph = AgentGraph(
        "nofinal",
        version="1.0.0",
        entry="start",
        nodes=[Start(), Work("a")],
        edges=[normal("start", "a"), final("a")],
    )
    state, d = begin(graph)
    route(state, plan_done(d.dispatch[0], finish=True), [], NOW)
    assert "returned Finish(...) but has no FINAL edge; add final('start')" in state.reason


def test_retrying_attempts_are_recorded_but_not_routed() -> None:
    state, d = begin(fan_out_graph())
    a, _ = route(state, plan_done(d.dispatch[0], "a", "b"), [], NOW).dispatch
    d = route(state, task_done(a, status=pb.EXECUTION_STATUS_RETRYING, error="x"), [], NOW)
    assert d.dispatch == [] and "retrying" in d.events[0].routed.note
    assert a.input_id in state.pending  # still waiting for the final attempt


def test_a_redelivered_execution_is_ignored() -> None:
    state, d = begin(loop_graph(2))
    envelope = plan_done(d.dispatch[0], "step")
    assert route(state, envelope, [], NOW).dispatch
    assert route(state, envelope, [], NOW) == Decision()


def guard(action: str, exec_id: str = "") -> pb.GuardrailDecision:
    return pb.GuardrailDecision(exec_id=exec_id, rule="r1", action=action, message="m")


def test_reject_records_but_routes_nothing_and_a_stalled_lifetime_fails() -> None:
    state, d = begin(loop_graph(2))
    d = route(state, plan_done(d.dispatch[0], "step"), [guard("REJECT_EXECUTION")], NOW)
    assert kinds(d) == ["guardrail", "routed", "failed"]
    assert "rejected by guardrail 'r1'" in d.events[1].routed.note
    assert "nothing left to run" in state.reason


def test_abort_verdict_is_terminal() -> None:
    state, d = begin(loop_graph(2))
    d = route(state, plan_done(d.dispatch[0], "step"), [guard("ABORT_LIFETIME")], NOW)
    assert kinds(d) == ["guardrail", "aborted"] and state.status == pb.LIFETIME_STATUS_ABORTED


def test_pause_defers_routing_until_resume_and_resume_continues_exactly() -> None:
    state, d = begin(fan_out_graph())
    a, b = route(state, plan_done(d.dispatch[0], "a", "b"), [], NOW).dispatch
    d = route(state, task_done(a, "A"), [guard("PAUSE_LIFETIME")], NOW)
    assert kinds(d) == ["guardrail", "paused"] and state.status == pb.LIFETIME_STATUS_PAUSED
    d = route(state, task_done(b, "B"), [], NOW)  # arrives while paused: held
    assert d.dispatch == [] and d.events[0].routed.deferred
    d = resume(state, pb.LifetimeResumed(reason="ok"), NOW, "c1")
    assert kinds(d)[0] == "resumed"
    (gather,) = d.dispatch
    assert [u.name for u in gather.upstream] == ["a", "b"]


def test_commands_pause_resume_abort() -> None:
    state, _ = begin(loop_graph(2))
    assert kinds(pause(state, "hold", NOW, "c1")) == ["paused"]
    assert pause(state, "again", NOW, "c2") == Decision()  # already paused
    assert kinds(resume(state, pb.LifetimeResumed(), NOW, "c3")) == ["resumed"]
    assert kinds(abort(state, "stop", NOW, "c4")) == ["aborted"]
    assert abort(state, "again", NOW, "c5") == Decision()


def test_a_redelivered_command_is_applied_once() -> None:
    state, _ = begin(loop_graph(2))
    assert kinds(pause(state, "hold", NOW, "c1")) == ["paused"]
    assert kinds(resume(state, pb.LifetimeResumed(), NOW, "c2")) == ["resumed"]
    # the same commands again (a bus redelivery): their events are already in the log
    assert pause(state, "hold", NOW, "c1") == Decision()
    assert kinds(pause(state, "hold", NOW, "c3")) == ["paused"]
    assert resume(state, pb.LifetimeResumed(), NOW, "c2") == Decision()
    assert state.held


Run = tuple[LifetimeState, list[pb.LifetimeEvent], dict[str, pb.ExecutionEnvelope]]


def run_to_end(graph: AgentGraph, verdicts: dict[str, str]) -> Run:
    """Drive a lifetime to its end with stand-in executions; return state, log, executions."""
    state, d = begin(graph, {"branches": ["a", "b"]})
    log = list(d.events)
    executions: dict[str, pb.ExecutionEnvelope] = {}
    todo = list(d.dispatch)
    while todo:
        node_input = todo.pop(0)
        if node_input.kind == pb.NODE_KIND_PLAN:
            names = [u.name for u in node_input.upstream]
            envelope = (
                plan_done(node_input, finish=True, output=names)
                if node_input.upstream
                else plan_done(node_input, "a", "b")
            )
        else:
            envelope = task_done(node_input, node_input.name)
        exec_id = envelope.task.header.exec_id or envelope.plan.header.exec_id
        executions[exec_id] = envelope
        found = [guard(verdicts[node_input.name], exec_id)] if node_input.name in verdicts else []
        d = route(state, envelope, found, NOW)
        log.extend(d.events)
        todo.extend(d.dispatch)
        if state.status == pb.LIFETIME_STATUS_PAUSED:
            d = resume(state, pb.LifetimeResumed(), NOW, "r")
            log.extend(d.events)
            todo.extend(d.dispatch)
    return state, log, executions


@pytest.mark.parametrize("verdicts", [{}, {"a": "PAUSE_LIFETIME"}, {"b": "ABORT_LIFETIME"}])
def test_rebuilding_from_the_log_gives_the_live_state(verdicts: dict[str, str]) -> None:
    live, log, executions = run_to_end(fan_out_graph(), verdicts)
    rebuilt = rebuild(log, executions)
    assert rebuilt is not None
    for field in ("status", "steps", "iterations", "seen", "pending", "joins", "output", "reason"):
        assert getattr(rebuilt, field) == getattr(live, field), field


def test_rebuild_without_a_start_is_none() -> None:
    assert rebuild([], {}) is None


def test_graph_nodes_used_here_are_valid() -> None:
    # guards against the helpers above drifting from what AgentGraph accepts
    assert loop_graph(1).spec.entry == "loop"
    assert {Gather, Loop, Start, Step, Work}


def waiting(node_input: pb.NodeInput, prompt: str) -> pb.ExecutionEnvelope:
    return pb.ExecutionEnvelope(
        task=pb.TaskExecution(
            header=header(node_input, pb.EXECUTION_STATUS_WAITING),
            result=pb.TaskResult(human_prompt=prompt),
        )
    )


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_two_branches_wait_for_people_and_resume_in_either_order(order: tuple[int, int]) -> None:
    state, d = begin(fan_out_graph())
    log = list(d.events)
    inputs = route(state, plan_done(d.dispatch[0], "a", "b"), [], NOW).dispatch
    asked = []
    for node_input in inputs:
        envelope = waiting(node_input, f"approve {node_input.name}?")
        d = route(state, envelope, [], NOW)
        log.extend(d.events)
        asked.append((node_input, envelope.task.header.exec_id))
    assert state.status == pb.LIFETIME_STATUS_PAUSED and len(state.waiting) == 2
    assert any(e.paused.exec_id == asked[0][1] for e in log if e.WhichOneof("kind") == "paused")
    outputs = {}
    for index in order:
        node_input, exec_id = asked[index]
        answer = pb.LifetimeResumed(human_input=encode("yes"), exec_id=exec_id)
        d = resume(state, answer, NOW, f"r{index}")
        (again,) = d.dispatch
        assert (again.name, again.iteration) == (node_input.name, node_input.iteration)
        assert again.answers_exec_id == exec_id and again.human_input == encode("yes")
        d2 = route(state, task_done(again, f"{node_input.name} approved"), [], NOW)
        outputs[node_input.name] = d2
    # after both answers the join ran once, with both branches
    (gather,) = [i for d2 in outputs.values() for i in d2.dispatch]
    assert [u.name for u in gather.upstream] == ["a", "b"]
    assert state.status == pb.LIFETIME_STATUS_RUNNING and not state.waiting


def test_answering_one_of_two_questions_leaves_the_lifetime_idle_and_paused() -> None:
    state, d = begin(fan_out_graph())
    a, b = route(state, plan_done(d.dispatch[0], "a", "b"), [], NOW).dispatch
    wait_a, wait_b = waiting(a, "a?"), waiting(b, "b?")
    route(state, wait_a, [], NOW)
    route(state, wait_b, [], NOW)
    answer = pb.LifetimeResumed(human_input=encode(1), exec_id=wait_a.task.header.exec_id)
    (again,) = resume(state, answer, NOW, "r1").dispatch
    d = route(state, task_done(again, "A"), [], NOW)
    idle = [e for e in d.events if e.WhichOneof("kind") == "paused" and e.paused.idle]
    assert idle and wait_b.task.header.exec_id in idle[0].paused.reason
    assert state.status == pb.LIFETIME_STATUS_PAUSED
    # a resume without input does not answer anyone
    assert resume(state, pb.LifetimeResumed(), NOW, "r2") == Decision()


def test_rebuild_reproduces_waiting_and_answers() -> None:
    state, d = begin(fan_out_graph())
    log = list(d.events)
    executions: dict[str, pb.ExecutionEnvelope] = {}

    def apply(envelope: pb.ExecutionEnvelope) -> Decision:
        executions[envelope.task.header.exec_id or envelope.plan.header.exec_id] = envelope
        out = route(state, envelope, [], NOW)
        log.extend(out.events)
        return out

    a, b = apply(plan_done(d.dispatch[0], "a", "b")).dispatch
    wait_a = waiting(a, "a?")
    apply(wait_a)
    apply(task_done(b, "B"))
    answer = pb.LifetimeResumed(human_input=encode(1), exec_id=wait_a.task.header.exec_id)
    r = resume(state, answer, NOW, "r1")
    log.extend(r.events)
    apply(task_done(r.dispatch[0], "A"))
    rebuilt = rebuild(log, executions)
    assert rebuilt is not None
    for field in ("status", "steps", "iterations", "pending", "waiting", "output", "held"):
        assert getattr(rebuilt, field) == getattr(state, field), field
