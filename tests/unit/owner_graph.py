"""A graph for the owner tests: its Task signals that it started and waits for a file.

Input: ``{"dir": "/some/folder"}``. Each run of ``gate`` writes
``<dir>/started-<n>`` and returns once ``<dir>/release`` exists (or after 60 s),
so a test can act while a lifetime is certainly mid-run, then let it finish.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tickrail import AgentGraph, Finish, Next, Plan, PlanContext, Task, TaskContext, final, normal


class Gate(Task):
    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        folder = Path(ctx.input["dir"])
        runs = len(list(folder.glob("started-*")))
        (folder / f"started-{runs + 1}").write_text(str(time.time()))
        deadline = time.monotonic() + 60
        # the release is a file another process writes: nothing to await but its arrival
        while not (folder / "release").exists() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        ctx.record_usage(tokens_in=7, tokens_out=3)
        return {"released": (folder / "release").exists()}


class Decide(Plan):
    async def plan(self, ctx: PlanContext) -> Next | Finish:
        if not ctx.upstream:
            return Next({"gate": ctx.input})
        return Finish(ctx.upstream[0].value)


graph = AgentGraph(
    "owner_gate",
    version="1.0.0",
    entry="decide",
    nodes=[Decide(), Gate()],
    edges=[normal("decide", "gate"), normal("gate", "decide"), final("decide")],
)
