"""A lifetime that runs long enough to be watched, paused and resumed from a page."""

from __future__ import annotations

import asyncio
from typing import Any

from tickrail import AgentGraph, Finish, Next, Plan, PlanContext, Task, TaskContext, final, normal

ROUNDS = 200


class Again(Plan):
    name = "again"

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        done = len([u for u in ctx.upstream if u.name == "tick"]) and ctx.upstream[-1].value
        if done and done >= ROUNDS:
            return Finish(done)
        return Next({"tick": (done or 0) + 1})


class Tick(Task):
    name = "tick"

    async def run(self, ctx: TaskContext) -> Any:
        await asyncio.sleep(0.2)
        return ctx.input


graph = AgentGraph(
    "slow",
    version="1.0.0",
    entry="again",
    nodes=[Again(), Tick()],
    edges=[normal("again", "tick"), normal("tick", "again"), final("again")],
    max_iterations=ROUNDS + 5,
    max_steps=3 * ROUNDS,
)
