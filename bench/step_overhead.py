"""Per-step overhead of tickrail's embedded profile, with LangGraph measured alongside.

    python bench/step_overhead.py [--quick]

Measures, on this machine, in one run (medians of several repetitions):
  1. chain: one lifetime of a 200-step Plan/Task chain (nodes do no work), so
     the time per step is pure orchestration + durable recording (SQLite WAL).
  2. concurrent: 1,000 lifetimes of 10 steps each started at once: steps/s.
If LangGraph is installed (pip install langgraph langgraph-checkpoint-sqlite),
the same shapes run on it (no persistence, in-memory checkpointer, SQLite
checkpointer) and the ratios are printed. Not a test: numbers vary with load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tickrail import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Task,
    TaskContext,
    final,
    normal,
)
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime


class Decide(Plan):
    name = "decide"

    def __init__(self, steps: int) -> None:
        self.steps = steps

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        count = ctx.upstream[0].value if ctx.upstream else 0
        return Finish(count) if count * 2 >= self.steps else Next({"act": count})


class Act(Task):
    name = "act"

    async def run(self, ctx: TaskContext) -> int:
        return int(ctx.input) + 1


def chain(steps: int) -> AgentGraph:
    return AgentGraph(
        f"chain{steps}",
        version="1.0.0",
        entry="decide",
        nodes=[Decide(steps), Act()],
        edges=[normal("decide", "act"), normal("act", "decide"), final("decide")],
        max_iterations=steps + 10,
    )


async def tickrail_chain(steps: int, repeats: int) -> tuple[float, int]:
    graph = chain(steps)
    with tempfile.TemporaryDirectory() as home:
        async with Runtime(Settings(home=home), [graph]) as rt:
            await rt.wait(await rt.start_lifetime(graph), timeout=60)  # warm up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                lifetime_id = await rt.start_lifetime(graph)
                await rt.wait(lifetime_id, timeout=60)
                times.append(time.perf_counter() - t0)
            executed = len(await rt.store.executions(lifetime_id))
    return statistics.median(times) / executed, executed


async def tickrail_concurrent(lifetimes: int, steps: int, repeats: int) -> tuple[float, int]:
    graph = chain(steps)
    rates = []
    with tempfile.TemporaryDirectory() as home:
        async with Runtime(Settings(home=home), [graph]) as rt:
            for _ in range(repeats):
                t0 = time.perf_counter()
                ids = [await rt.start_lifetime(graph) for _ in range(lifetimes)]
                await asyncio.gather(*(rt.wait(i, timeout=300) for i in ids))
                elapsed = time.perf_counter() - t0
                executed = len(await rt.store.executions(ids[0])) * lifetimes
                rates.append(executed / elapsed)
    return statistics.median(rates), executed


class State(TypedDict):
    """LangGraph's state for the same chain (module level: LangGraph resolves hints)."""

    count: int


def langgraph_runner(kind: str, steps: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    def decide(state: State) -> State:
        return state

    def act(state: State) -> State:
        return {"count": state["count"] + 1}

    def route(state: State) -> str:
        return END if state["count"] * 2 >= steps else "act"

    builder = StateGraph(State)
    builder.add_node("decide", decide)
    builder.add_node("act", act)
    builder.add_edge(START, "decide")
    builder.add_conditional_edges("decide", route)
    builder.add_edge("act", "decide")
    saver: Any = None
    if kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        saver = InMemorySaver()
    elif kind == "sqlite":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(tempfile.mktemp(suffix=".db"), check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
    return builder.compile(checkpointer=saver)


def langgraph_chain(kind: str, steps: int, repeats: int) -> float:
    app = langgraph_runner(kind, steps)
    times = []
    for i in range(repeats + 1):
        config = {"recursion_limit": steps * 2 + 10, "configurable": {"thread_id": f"t{i}"}}
        t0 = time.perf_counter()
        app.invoke({"count": 0}, config)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) / (steps + 1)


async def langgraph_concurrent(kind: str, lifetimes: int, steps: int) -> float:
    app = langgraph_runner(kind, steps)

    async def one(i: int) -> None:
        config = {"recursion_limit": 100, "configurable": {"thread_id": f"c{i}"}}
        await app.ainvoke({"count": 0}, config)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(lifetimes)))
    return lifetimes * (steps + 1) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    steps, lifetimes, short = 200, 1000, 10

    per_step, executed = asyncio.run(tickrail_chain(steps, repeats))
    rate, total = asyncio.run(tickrail_concurrent(lifetimes, short, 1 if args.quick else 3))
    print(f"tickrail embedded (SQLite WAL, every step recorded), median of {repeats}:")
    print(f"  chain of {executed} executions: {per_step * 1e6:8.1f} µs per step")
    print(f"  {lifetimes} concurrent lifetimes x {total // lifetimes} steps: {rate:10,.0f} steps/s")

    try:
        import langgraph  # noqa: F401
    except ImportError:
        print(
            "\nLangGraph not installed: pip install langgraph langgraph-checkpoint-sqlite "
            "to measure the ratios here."
        )
        return
    print("\nLangGraph, same shapes, same machine:")
    print(f"  {'checkpointer':<12} {'µs/step':>9} {'ratio':>7}   {'steps/s':>10} {'ratio':>7}")
    for kind in ("none", "memory", "sqlite"):
        theirs = langgraph_chain(kind, steps, repeats)
        if kind == "sqlite":
            their_rate = float("nan")  # the sync SqliteSaver cannot run concurrently
        else:
            their_rate = asyncio.run(langgraph_concurrent(kind, lifetimes, short))
        print(
            f"  {kind:<12} {theirs * 1e6:9.1f} {theirs / per_step:6.1f}x   "
            f"{their_rate:10,.0f} {rate / their_rate:6.1f}x"
        )
    print("  (ratio > 1: tickrail is that many times faster, while recording every step durably)")


if __name__ == "__main__":
    main()
