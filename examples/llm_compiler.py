"""LLMCompiler (arXiv:2312.04511) on tickrail: plan a DAG of tool calls, run it eagerly, join.

    python examples/llm_compiler.py        # runs it, prints wall time beside the critical path
    tickrail run examples/llm_compiler.py  # the same graph under the CLI

The planner is a DETERMINISTIC STAND-IN for the planning model: it always
emits the same DAG of 20 tool calls (four tools, each used several times, with
different latencies). It returns them all at once as ``Send``s with ids and
``after=[...]`` dependencies; the control plane starts each call as soon as
its own dependencies have finished (not when a whole level has), hands their
results to it (``ctx.deps``; ``"$t3"`` in an argument is replaced by t3's
result, as LLMCompiler does), and the joiner Plan runs once, with every result
in the DAG's order. The tools sleep for their latency instead of calling an
API, and the joiner records made-up token usage.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from tickrail import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Send,
    Task,
    TaskContext,
    final,
    join,
    parallel,
)

TOOLS = ["search", "fetch", "calc", "summarize"]


@dataclass(frozen=True)
class Call:
    id: str
    tool: str
    args: Any
    latency: float
    after: tuple[str, ...] = ()


# What the stand-in planning model "emits" (LLMCompiler's plan format).
DAG = [
    Call("t1", "search", "tickrail", 0.8),
    Call("t2", "search", "kafka", 0.5),
    Call("t3", "search", "postgres", 1.2),
    Call("t4", "search", "redis", 0.3),
    Call("t5", "fetch", "$t1", 0.6, ("t1",)),
    Call("t6", "fetch", "$t2", 0.9, ("t2",)),
    Call("t7", "fetch", "$t3", 0.4, ("t3",)),
    Call("t8", "fetch", "$t4", 0.7, ("t4",)),
    Call("t9", "calc", "$t5", 0.1, ("t5",)),
    Call("t10", "calc", "$t6", 0.1, ("t6",)),
    Call("t11", "calc", "$t7", 0.1, ("t7",)),
    Call("t12", "calc", "$t8", 0.1, ("t8",)),
    Call("t13", "search", "benchmarks", 1.0),
    Call("t14", "fetch", "$t13", 0.5, ("t13",)),
    Call("t15", "summarize", ["$t9", "$t10"], 0.6, ("t9", "t10")),
    Call("t16", "summarize", ["$t11", "$t12"], 0.6, ("t11", "t12")),
    Call("t17", "calc", ["$t15", "$t16"], 0.2, ("t15", "t16")),
    Call("t18", "search", "licenses", 0.4),
    Call("t19", "fetch", "$t18", 0.3, ("t18",)),
    Call("t20", "summarize", ["$t14", "$t17", "$t19"], 0.5, ("t14", "t17", "t19")),
]


def critical_path(dag: list[Call]) -> float:
    """The longest chain of latencies through the DAG: the best possible wall time."""
    done: dict[str, float] = {}
    for call in dag:  # listed in dependency order
        done[call.id] = call.latency + max((done[d] for d in call.after), default=0.0)
    return max(done.values())


def level_by_level(dag: list[Call]) -> float:
    """What running whole levels one after another would take (for comparison)."""
    level: dict[str, int] = {}
    for call in dag:
        level[call.id] = 1 + max((level[d] for d in call.after), default=-1)
    slowest: dict[int, float] = {}
    for call in dag:
        slowest[level[call.id]] = max(slowest.get(level[call.id], 0.0), call.latency)
    return sum(slowest.values())


class Planner(Plan):
    """STAND-IN for the planning model: always the same DAG, all at once."""

    async def plan(self, ctx: PlanContext) -> Next:
        return Next(
            [
                Send(
                    c.tool,
                    {"args": c.args, "latency": c.latency, "call": c.id},
                    id=c.id,
                    after=c.after,
                )
                for c in DAG
            ]
        )


def resolve(args: Any, deps: dict[str, Any]) -> Any:
    """LLMCompiler's ``$id`` references, replaced by those calls' results."""
    if isinstance(args, str) and args.startswith("$") and args[1:] in deps:
        return deps[args[1:]]["result"]
    if isinstance(args, list):
        return [resolve(a, deps) for a in args]
    return args


class Tool(Task):
    """One tool; the latency stands in for the API call it would make."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        args = resolve(ctx.input["args"], ctx.deps)
        await asyncio.sleep(ctx.input["latency"])
        return {"call": ctx.input["call"], "tool": self.name, "result": f"{self.name}({args})"}


class Joiner(Plan):
    """LLMCompiler's joiner: runs once, with every call's result in the DAG's order."""

    async def plan(self, ctx: PlanContext) -> Finish:
        ctx.record_usage(tokens_in=40 * len(ctx.upstream), tokens_out=60, model="stand-in-joiner")
        return Finish(
            {
                "calls": [u.value["call"] for u in ctx.upstream],
                "answer": ctx.upstream[-1].value["result"],
            }
        )


graph = AgentGraph(
    "llm_compiler",
    version="1.0.0",
    entry="planner",
    nodes=[Planner(), *(Tool(t) for t in TOOLS), Joiner()],
    edges=[parallel("planner", TOOLS), join(TOOLS, "joiner"), final("joiner")],
)


async def measure(home: str) -> tuple[float, Any]:
    """Run one lifetime embedded; its wall time (start command to completion) and final event."""
    from tickrail.services.config import Settings
    from tickrail.services.runtime import Runtime

    async with Runtime(Settings(profile="embedded", home=home), [graph]) as rt:
        started = time.perf_counter()
        lifetime_id = await rt.start_lifetime(graph, None)
        done = await rt.wait(lifetime_id, timeout=60)
        return time.perf_counter() - started, done


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        wall, done = asyncio.run(measure(home))
    if done.WhichOneof("kind") != "completed":
        print(f"the lifetime did not complete: {done}", file=sys.stderr)
        return 1
    best, levels = critical_path(DAG), level_by_level(DAG)
    print(f"{len(DAG)} tool calls, {len(TOOLS)} tools")
    print(f"critical path  {best:5.2f} s   (the DAG's longest chain of latencies)")
    print(f"level by level {levels:5.2f} s   (if each level waited for the whole previous one)")
    print(f"measured wall  {wall:5.2f} s   = {wall / best:.2f} x the critical path")
    return 0


if __name__ == "__main__":
    if sys.argv[1:]:
        from tickrail.services.cli.main import main as cli

        raise SystemExit(cli(["run", __file__, *sys.argv[1:]]))
    raise SystemExit(main())
