"""Small graphs shared by the unit tests."""

from __future__ import annotations

import asyncio
from typing import Any

from tickrail.sdk import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Retry,
    Task,
    TaskContext,
    final,
    join,
    normal,
    parallel,
)


class Start(Plan):
    async def plan(self, ctx: PlanContext) -> Next:
        return Next(list(ctx.input["branches"]) if ctx.input else ["a", "b"])


class Work(Task):
    """Returns its name and input; sleeps ``delay``; fails when the input says so."""

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay

    async def run(self, ctx: TaskContext) -> Any:
        await asyncio.sleep(self.delay)
        if isinstance(ctx.input, dict) and self.name in ctx.input.get("fail", []):
            raise ValueError(f"{self.name} was told to fail")
        ctx.record_usage(tokens_in=10, tokens_out=5, cost_usd=0.001)
        return {"node": self.name}


class Gather(Plan):
    async def plan(self, ctx: PlanContext) -> Next | Finish:
        return Finish(
            {"joined": [u.name for u in ctx.upstream], "ok": [u.ok for u in ctx.upstream]}
        )


def fan_out_graph(*, continue_on_failure: bool = False) -> AgentGraph:
    a, b = Work("a"), Work("b", delay=0.01)
    if continue_on_failure:
        a.continue_on_failure = True  # type: ignore[misc]
        b.continue_on_failure = True  # type: ignore[misc]
    return AgentGraph(
        "fan_out",
        version="1.0.0",
        entry="start",
        nodes=[Start(), a, b, Gather()],
        edges=[parallel("start", ["a", "b"]), join(["a", "b"], "gather"), final("gather")],
    )


class Loop(Plan):
    """Runs ``step`` until it has run ``times`` times, then finishes."""

    def __init__(self, times: int) -> None:
        self.times = times

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        done = ctx.upstream[0].value["count"] if ctx.upstream else 0
        if done >= self.times:
            return Finish({"count": done})
        return Next({"step": {"count": done}})


class Step(Task):
    async def run(self, ctx: TaskContext) -> dict[str, int]:
        return {"count": ctx.input["count"] + 1}


def loop_graph(times: int, *, max_iterations: int = 100) -> AgentGraph:
    return AgentGraph(
        "loop",
        version="1.0.0",
        entry="loop",
        nodes=[Loop(times), Step()],
        edges=[normal("loop", "step"), normal("step", "loop"), final("loop")],
        max_iterations=max_iterations,
    )


class Flaky(Task):
    """Fails ``failures`` times per input, then succeeds."""

    retry = Retry(max_attempts=3, backoff=0.001)
    calls: dict[str, int] = {}

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def run(self, ctx: TaskContext) -> str:
        seen = Flaky.calls.get(ctx.lifetime_id, 0) + 1
        Flaky.calls[ctx.lifetime_id] = seen
        if seen <= self.failures:
            raise ConnectionError(f"flaky failure {seen}")
        return "finally"


def single_task_graph(task: Task, name: str = "single") -> AgentGraph:
    return AgentGraph(
        name, version="1.0.0", entry=task.name, nodes=[task], edges=[final(task.name)]
    )
