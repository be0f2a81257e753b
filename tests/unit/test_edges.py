"""The edge rules as users draw them: Task->Task, Finish from a Task, several Plans
leading to one Task, and human input, replay and fork on mapped branches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tickrail.sdk import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Task,
    TaskContext,
    final,
    join,
    normal,
    parallel,
)
from tickrail.sdk._payload import encode, read_value
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.control_plane.fork import fork_lifetime
from tickrail.services.control_plane.replay import replay_lifetime
from tickrail.services.runtime import Runtime


class Fetch(Task):
    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        return {"fetched": ctx.input}


class Shout(Task):
    async def run(self, ctx: TaskContext) -> str:
        assert [u.name for u in ctx.upstream] == ["fetch"]
        return str(ctx.input["fetched"]).upper()


def header(envelope: pb.ExecutionEnvelope) -> pb.ExecutionHeader:
    return getattr(envelope, envelope.WhichOneof("execution") or "task").header


async def run(
    tmp_path: Path, graph: AgentGraph, value: Any = None
) -> tuple[pb.LifetimeEvent, list[pb.ExecutionEnvelope], list[pb.LifetimeEvent]]:
    async with Runtime(Settings(profile="test", home=str(tmp_path)), [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph, value)
        done = await rt.wait(lifetime_id, timeout=30)
        executions = [
            pb.ExecutionEnvelope.FromString(r.envelope)
            for r in await rt.store.executions(lifetime_id)
        ]
        events = [pb.LifetimeEvent.FromString(r.body) for r in await rt.store.events(lifetime_id)]
        assert (await replay_lifetime(rt.store, lifetime_id)).ok
    return done, executions, events


async def test_a_task_feeds_a_task_with_one_routed_event_and_no_plan(tmp_path: Path) -> None:
    graph = AgentGraph(
        "chain",
        version="1.0.0",
        entry="fetch",
        nodes=[Fetch(), Shout()],
        edges=[normal("fetch", "shout"), final("shout")],
    )
    done, executions, events = await run(tmp_path, graph, "hello")
    assert await read_value(done.completed.output, None) == "HELLO"
    assert [header(e).name for e in executions] == ["fetch", "shout"]
    shout = header(executions[1])
    assert (shout.from_node, shout.from_exec_id) == ("fetch", header(executions[0]).exec_id)
    routed = [e.routed for e in events if e.WhichOneof("kind") == "routed" and e.routed.name]
    assert routed[0].name == "fetch" and [d.name for d in routed[0].dispatched] == ["shout"]


class Count(Task):
    """Ends the lifetime by returning Finish once it reached 3; otherwise goes on."""

    async def run(self, ctx: TaskContext) -> Any:
        count = (ctx.input or {}).get("count", 0) + 1
        return Finish({"count": count}) if count >= 3 else {"count": count}


class Again(Plan):
    async def plan(self, ctx: PlanContext) -> Next:
        return Next({"count": ctx.input})


async def test_a_task_with_a_final_edge_beside_another_ends_only_when_it_returns_finish(
    tmp_path: Path,
) -> None:
    graph = AgentGraph(
        "counter",
        version="1.0.0",
        entry="count",
        nodes=[Count(), Again()],
        edges=[normal("count", "again"), normal("again", "count"), final("count")],
    )
    done, executions, _ = await run(tmp_path, graph)
    assert await read_value(done.completed.output, None) == {"count": 3}
    assert [header(e).name for e in executions] == ["count", "again"] * 2 + ["count"]
    assert [e.task.result.finish for e in executions if e.WhichOneof("execution") == "task"] == [
        False,
        False,
        True,
    ]


async def test_finish_from_a_task_without_a_final_edge_fails_the_lifetime(
    tmp_path: Path,
) -> None:
    graph = AgentGraph(
        "nofinal",
        version="1.0.0",
        entry="count",
        nodes=[Count(), Again(), Fetch()],
        edges=[
            normal("count", "again"),
            normal("again", "count"),
            normal("again", "fetch"),
            final("fetch"),
        ],
    )
    done, _, _ = await run(tmp_path, graph, {"count": 5})
    assert done.WhichOneof("kind") == "failed"
    assert "Task 'count' returned Finish(...) but has no FINAL edge" in done.failed.reason


class Chooser(Plan):
    def __init__(self, name: str, target: str) -> None:
        self.name, self.target = name, target

    async def plan(self, ctx: PlanContext) -> Any:
        if ctx.upstream and ctx.upstream[0].name == "shared" and self.name == "second":
            return Finish(ctx.upstream[0].value)
        return Next({self.target: self.name})


class Shared(Task):
    async def run(self, ctx: TaskContext) -> str:
        return f"sent by {ctx.from_node}"


class Relay(Task):
    async def run(self, ctx: TaskContext) -> str:
        return "relayed"


async def test_several_plans_may_dispatch_one_task_and_the_header_says_which(
    tmp_path: Path,
) -> None:
    # first -> shared -> second (a Plan) -> shared -> second -> Finish
    graph = AgentGraph(
        "shared",
        version="1.0.0",
        entry="first",
        nodes=[Chooser("first", "shared"), Shared(), Chooser("second", "shared")],
        edges=[
            normal("first", "shared"),
            normal("second", "shared"),
            normal("shared", "second"),
            final("second"),
        ],
    )
    done, executions, _ = await run(tmp_path, graph)
    assert await read_value(done.completed.output, None) == "sent by first"
    shared = [header(e) for e in executions if header(e).name == "shared"]
    assert [h.from_node for h in shared] == ["first"]


class MapAsk(Plan):
    name = "map_ask"

    async def plan(self, ctx: PlanContext) -> Any:
        if ctx.upstream:
            return Finish([u.value for u in ctx.upstream])
        return Next.map("ask", [1, 2, 3])


class MaybeAsk(Task):
    name = "ask"

    async def run(self, ctx: TaskContext) -> Any:
        if ctx.input == 2:
            return {"item": 2, "answer": ctx.ask_human(f"branch {ctx.branch}: item 2?")}
        return {"item": ctx.input}


class Total(Plan):
    async def plan(self, ctx: PlanContext) -> Finish:
        return Finish([u.value for u in ctx.upstream])


def ask_graph() -> AgentGraph:
    return AgentGraph(
        "mapped_ask",
        version="1.0.0",
        entry="map_ask",
        nodes=[MapAsk(), MaybeAsk(), Total()],
        edges=[parallel("map_ask", ["ask"]), join(["ask"], "total"), final("total")],
    )


async def test_one_mapped_branch_asks_a_person_the_others_go_on(tmp_path: Path) -> None:
    graph = ask_graph()
    async with Runtime(Settings(profile="test", home=str(tmp_path)), [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph)
        paused = await rt.wait(lifetime_id, timeout=30)
        assert paused.WhichOneof("kind") == "paused" and "branch 1: item 2?" in paused.paused.reason
        rt.rearm(lifetime_id)
        await rt.send(
            pb.LifetimeCommand(
                command_id="answer-1",
                lifetime_id=lifetime_id,
                tenant_id="default",
                resume=pb.LifetimeResumed(human_input=encode("yes"), exec_id=paused.paused.exec_id),
            )
        )
        done = await rt.wait(lifetime_id, timeout=30)
        assert done.WhichOneof("kind") == "completed", done
        assert await read_value(done.completed.output, None) == [
            {"item": 1},
            {"item": 2, "answer": "yes"},
            {"item": 3},
        ]
        assert (await replay_lifetime(rt.store, lifetime_id)).ok

        # fork at mapped branch 2 with an edited result: the join sees the edit
        records = [
            pb.ExecutionEnvelope.FromString(r.envelope)
            for r in await rt.store.executions(lifetime_id)
        ]
        third = next(
            e for e in records if header(e).name == "ask" and header(e).branch[-1].index == 2
        )
        forked = await fork_lifetime(
            rt, lifetime_id, header(third).exec_id, result=encode({"item": "edited"})
        )
        asked = await rt.wait(forked, timeout=30)  # item 2's question was open then
        assert asked.WhichOneof("kind") == "paused" and asked.paused.idle
        rt.rearm(forked)
        waiting_exec = asked.paused.reason.split(" at ")[1].split(" ")[0]
        await rt.send(
            pb.LifetimeCommand(
                command_id="answer-2",
                lifetime_id=forked,
                tenant_id="default",
                resume=pb.LifetimeResumed(human_input=encode("yes"), exec_id=waiting_exec),
            )
        )
        refined = await rt.wait(forked, timeout=30)
        assert refined.WhichOneof("kind") == "completed", refined
        assert (await read_value(refined.completed.output, None))[2] == {"item": "edited"}


class AskFirst(Plan):
    name = "ask_first"

    async def plan(self, ctx: PlanContext) -> Next:
        from tickrail.sdk import Send

        return Next(
            [
                Send("ask", 2, id="question"),
                Send("ask", 1, id="after_answer", after=["question"]),
            ]
        )


async def test_a_dag_dependency_that_asks_a_person_releases_its_dependents_once_answered(
    tmp_path: Path,
) -> None:
    graph = AgentGraph(
        "dag_ask",
        version="1.0.0",
        entry="ask_first",
        nodes=[AskFirst(), MaybeAsk(), Total()],
        edges=[parallel("ask_first", ["ask"]), join(["ask"], "total"), final("total")],
    )
    async with Runtime(Settings(profile="test", home=str(tmp_path)), [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph)
        paused = await rt.wait(lifetime_id, timeout=30)
        assert paused.WhichOneof("kind") == "paused", paused
        rt.rearm(lifetime_id)
        await rt.send(
            pb.LifetimeCommand(
                command_id="answer",
                lifetime_id=lifetime_id,
                tenant_id="default",
                resume=pb.LifetimeResumed(human_input=encode("ok"), exec_id=paused.paused.exec_id),
            )
        )
        done = await rt.wait(lifetime_id, timeout=30)
        assert done.WhichOneof("kind") == "completed", done
        assert await read_value(done.completed.output, None) == [
            {"item": 2, "answer": "ok"},
            {"item": 1},
        ]
        assert (await replay_lifetime(rt.store, lifetime_id)).ok
