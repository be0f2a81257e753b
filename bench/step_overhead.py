"""Per-step overhead of tickrail's embedded profile, with LangGraph measured alongside.

    python bench/step_overhead.py [--quick] [--rounds 7] [--no-instructions]

Shapes (nodes do no work, so a step is pure orchestration):
  1. chain: one lifetime of a 200-step Plan/Task chain; tickrail records every
     step durably in SQLite (WAL) before routing it.
  2. concurrent: 1,000 lifetimes of 10 steps each started at once.

The systems run round by round in one process (tickrail, then LangGraph with no
persistence, the in-memory saver and the SQLite saver, then the next round), so
load from other processes on the machine hits all of them alike. Printed per
system: wall and CPU time per step (median and min-max over the rounds) and
the ratios to tickrail. When valgrind is on PATH, the instructions per step are
counted with callgrind, which load does not change: a subprocess running N
steps minus one running 0 steps (same setup and warm-up), divided by N.

LangGraph: pip install -e '.[bench]'. Not a test: the times vary with load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _probes import CollectorClock, data_plane_batches

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

STEPS, LIFETIMES, SHORT = 200, 1000, 10
LANGGRAPH_KINDS = ("none", "memory", "sqlite")


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


class Sample:
    """Wall and CPU seconds of one run and the steps it executed (for tickrail's
    concurrent runs also the collector's CPU seconds and the commits)."""

    def __init__(self, wall: float, cpu: float, steps: int) -> None:
        self.wall, self.cpu, self.steps = wall, cpu, steps
        self.collector, self.commits = 0.0, 0


def _timed(steps: int, run: Callable[[], Any]) -> Sample:
    w0, c0 = time.perf_counter(), time.process_time()
    run()
    return Sample(time.perf_counter() - w0, time.process_time() - c0, steps)


# ---- tickrail ---------------------------------------------------------------


class Tickrail:
    """One Runtime kept open across rounds; each round starts fresh lifetimes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, home: str) -> None:
        self.loop = loop
        self.long, self.short = chain(STEPS), chain(SHORT)
        self.rt = Runtime(Settings(home=home), [self.long, self.short])
        loop.run_until_complete(self.rt.__aenter__())
        self.loop.run_until_complete(self._chain(self.short))  # warm up
        self.chain_steps = STEPS + 1  # decide and act alternate; the chain ends on a decide

    def close(self) -> None:
        self.loop.run_until_complete(self.rt.__aexit__(None, None, None))

    async def _chain(self, graph: AgentGraph) -> int:
        lifetime_id = await self.rt.start_lifetime(graph)
        await self.rt.wait(lifetime_id, timeout=120)
        return len(await self.rt.store.executions(lifetime_id))

    async def _concurrent(self, lifetimes: int) -> int:
        ids = [await self.rt.start_lifetime(self.short) for _ in range(lifetimes)]
        await asyncio.gather(*(self.rt.wait(i, timeout=600) for i in ids))
        return len(await self.rt.store.executions(ids[0])) * lifetimes

    def chain(self) -> Sample:
        executed: list[int] = []
        sample = _timed(
            0, lambda: executed.append(self.loop.run_until_complete(self._chain(self.long)))
        )
        sample.steps = executed[0]
        return sample

    def concurrent(self, lifetimes: int) -> Sample:
        executed: list[int] = []
        collector, batches = CollectorClock(), data_plane_batches()
        gc.callbacks.append(collector)
        try:
            sample = _timed(
                0,
                lambda: executed.append(self.loop.run_until_complete(self._concurrent(lifetimes))),
            )
        finally:
            gc.callbacks.remove(collector)
        sample.steps = executed[0]
        sample.collector, sample.commits = collector.seconds, data_plane_batches() - batches
        return sample


# ---- LangGraph --------------------------------------------------------------


class State(TypedDict):
    """LangGraph's state for the same chain (module level: LangGraph resolves hints)."""

    count: int


def langgraph_app(kind: str, steps: int, home: str) -> Any:
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
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(os.path.join(home, f"langgraph-{steps}.db"), check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # as durable as tickrail's default
        saver = SqliteSaver(conn)
    return builder.compile(checkpointer=saver)


class LangGraph:
    def __init__(self, loop: asyncio.AbstractEventLoop, kind: str, home: str) -> None:
        self.loop, self.kind = loop, kind
        self.long = langgraph_app(kind, STEPS, home)
        self.short = langgraph_app(kind, SHORT, home)
        self.runs = 0
        self.chain_steps = STEPS + 1  # decide and act alternate, as in tickrail's chain
        self.short.invoke({"count": 0}, self._config(100))  # warm up

    def _config(self, limit: int) -> dict[str, Any]:
        self.runs += 1
        return {"recursion_limit": limit, "configurable": {"thread_id": f"t{self.runs}"}}

    def _chain(self) -> None:
        self.long.invoke({"count": 0}, self._config(STEPS * 2 + 10))

    def chain(self) -> Sample:
        return _timed(self.chain_steps, self._chain)

    def concurrent(self, lifetimes: int) -> Sample | None:
        if self.kind == "sqlite":
            return None  # the sync SqliteSaver cannot run concurrently

        async def many() -> None:
            await asyncio.gather(
                *(self.short.ainvoke({"count": 0}, self._config(100)) for _ in range(lifetimes))
            )

        return _timed(lifetimes * (SHORT + 1), lambda: self.loop.run_until_complete(many()))


# ---- instruction counts ------------------------------------------------------


def child(system: str, steps: int) -> None:
    """Set up, warm up, then run one chain of ``steps`` (none when 0): for callgrind."""
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as home:
        global STEPS
        STEPS = steps  # the warm-up (a SHORT chain) is the same in both runs
        runner: Tickrail | LangGraph
        runner = Tickrail(loop, home) if system == "tickrail" else LangGraph(loop, system, home)
        if steps:
            runner.chain()
        if isinstance(runner, Tickrail):
            runner.close()
    loop.close()


def instructions(system: str, steps: int) -> int:
    with tempfile.TemporaryDirectory() as out:
        target = os.path.join(out, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={target}",
                sys.executable,
                __file__,
                "--child",
                system,
                str(steps),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        text = Path(target).read_text()
    match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError("callgrind wrote no summary line")
    return int(match.group(1))


def instructions_per_step(system: str, steps: int) -> float:
    executed = steps + 1  # decide/act alternate; the chain ends on a decide
    return (instructions(system, steps) - instructions(system, 0)) / executed


# ---- report -----------------------------------------------------------------


def _row(name: str, samples: list[Sample], base: list[Sample] | None) -> str:
    wall = [s.wall / s.steps * 1e6 for s in samples]
    cpu = [s.cpu / s.steps * 1e6 for s in samples]
    rate = statistics.median(s.steps / s.wall for s in samples)
    text = (
        f"  {name:<20} wall {statistics.median(wall):7.1f} µs ({min(wall):.0f}-{max(wall):.0f})"
        f"  cpu {statistics.median(cpu):7.1f} µs ({min(cpu):.0f}-{max(cpu):.0f})"
        f"  {rate:9,.0f} steps/s"
    )
    if base is not None:
        ours_cpu = statistics.median(s.cpu / s.steps for s in base)
        ours_wall = statistics.median(s.wall / s.steps for s in base)
        text += (
            f"  tickrail is {statistics.median(wall) / 1e6 / ours_wall:4.1f}x (wall)"
            f" {statistics.median(cpu) / 1e6 / ours_cpu:4.1f}x (cpu) faster"
        )
    return text


def _median_cpu(samples: list[Sample]) -> float:
    return statistics.median(s.cpu / s.steps for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, 200 lifetimes")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-instructions", action="store_true", help="skip callgrind")
    parser.add_argument("--child", nargs=2, metavar=("SYSTEM", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    rounds = 3 if args.quick else args.rounds
    lifetimes = 200 if args.quick else LIFETIMES
    try:
        import langgraph  # noqa: F401

        kinds: tuple[str, ...] = LANGGRAPH_KINDS
    except ImportError:
        print("LangGraph not installed (pip install -e '.[bench]'): tickrail only.\n")
        kinds = ()

    loop = asyncio.new_event_loop()
    chains: dict[str, list[Sample]] = {}
    many: dict[str, list[Sample]] = {}
    with tempfile.TemporaryDirectory() as home:
        ours = Tickrail(loop, home)
        theirs = {kind: LangGraph(loop, kind, home) for kind in kinds}
        for _ in range(rounds):
            chains.setdefault("tickrail", []).append(ours.chain())
            many.setdefault("tickrail", []).append(ours.concurrent(lifetimes))
            for kind, runner in theirs.items():
                chains.setdefault(f"langgraph/{kind}", []).append(runner.chain())
                if (sample := runner.concurrent(lifetimes)) is not None:
                    many.setdefault(f"langgraph/{kind}", []).append(sample)
        ours.close()
    loop.close()

    print(f"load average before/after: {os.getloadavg()[0]:.1f} (2-core machines are noisy)")
    print(
        f"\n{ours.chain_steps}-step chain, every tickrail step durable in SQLite, {rounds} rounds:"
    )
    for name, samples in chains.items():
        print(_row(name, samples, None if name == "tickrail" else chains["tickrail"]))
    if "langgraph/none" in chains:
        ratio = _median_cpu(chains["tickrail"]) / _median_cpu(chains["langgraph/none"])
        print(f"  tickrail CPU per step / LangGraph's without persistence: {ratio:.2f}x")
    print(f"\n{lifetimes} concurrent {SHORT}-step lifetimes, {rounds} rounds:")
    for name, samples in many.items():
        print(_row(name, samples, None if name == "tickrail" else many["tickrail"]))
    print("  (langgraph/sqlite: the sync SqliteSaver cannot run lifetimes concurrently)")
    runs = many["tickrail"]
    collector = statistics.median(s.collector / s.steps * 1e6 for s in runs)
    shared = statistics.median(s.steps / max(s.commits, 1) for s in runs)
    print(
        f"  tickrail: the collector {collector:.1f} µs CPU/step;"
        f" {shared:.0f} steps per commit (median of the rounds)"
    )

    if args.no_instructions or shutil.which("valgrind") is None:
        print("\ninstructions per step: skipped (valgrind not on PATH or --no-instructions)")
        return
    print(f"\ninstructions per chain step (callgrind, {STEPS} steps minus 0 steps):")
    ours_count = instructions_per_step("tickrail", STEPS)
    print(f"  {'tickrail':<20} {ours_count / 1e6:6.3f} M")
    for kind in kinds:
        count = instructions_per_step(kind, STEPS)
        name = f"langgraph/{kind}"
        print(f"  {name:<20} {count / 1e6:6.3f} M  ({count / ours_count:.1f}x tickrail)")


if __name__ == "__main__":
    main()
