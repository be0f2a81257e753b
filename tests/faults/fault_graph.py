"""The graph the fault tests run: a fan-out, a join and a loop.

``rounds`` times, the ``rounds`` Plan fans out to three Tasks, which each take
``sleep`` seconds and spend TOKENS tokens, and joins them again; then it
finishes with the number of rounds it saw. Input: ``{"rounds": R, "sleep": S}``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tickrail import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Task,
    TaskContext,
    final,
    join,
    parallel,
)

BRANCHES = ["alpha", "beta", "gamma"]
TOKENS = 50


class Rounds(Plan):
    name = "rounds"

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        if not ctx.upstream:
            job = dict(ctx.input)
            done = 0
        else:
            job = dict(ctx.upstream[0].value)
            done = int(job["done"]) + 1
        if done >= int(job["rounds"]):
            return Finish({"rounds": done, "branches": [u.name for u in ctx.upstream]})
        job["done"] = done
        return Next({name: job for name in BRANCHES})


class Branch(Task):
    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(float(ctx.input.get("sleep", 0.3)))
        ctx.record_usage(tokens_in=TOKENS, tokens_out=0, model="stand-in")
        return dict(ctx.input)


graph = AgentGraph(
    "fault_loop",
    version="1.0.0",
    entry="rounds",
    nodes=[Rounds(), *(Branch(name) for name in BRANCHES)],
    edges=[parallel("rounds", BRANCHES), join(BRANCHES, "rounds"), final("rounds")],
)
