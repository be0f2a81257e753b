"""The graph bench/cloud_loop.py runs: a Plan that calls a Task ``TASKS`` times, then finishes."""

from __future__ import annotations

from tickrail import AgentGraph, Finish, Next, Plan, PlanContext, Task, TaskContext, final, normal

TASKS = 10


class Loop(Plan):
    name = "loop"

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        done = ctx.upstream[0].value if ctx.upstream else 0
        return Finish(done) if done >= TASKS else Next({"work": done})


class Work(Task):
    name = "work"

    async def run(self, ctx: TaskContext) -> int:
        return int(ctx.input) + 1


graph = AgentGraph(
    "bench_loop",
    version="1.0.0",
    entry="loop",
    nodes=[Loop(), Work()],
    edges=[normal("loop", "work"), normal("work", "loop"), final("loop")],
    max_iterations=TASKS * 2 + 10,
)
