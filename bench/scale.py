"""Many concurrent lifetimes of sleeping Tasks, embedded: does the cost per execution hold?

    python bench/scale.py [--lifetimes 1000,10000] [--tasks 10] [--sleep-ms 50]

Each lifetime is a Plan that calls a Task ``--tasks`` times; the Task sleeps
``--sleep-ms`` (waiting on a model or a tool, not using CPU). Every size runs
in a fresh process (so peak RSS is that size's), all lifetimes started at once
on one embedded Runtime (SQLite, every step durable). Printed per size: wall
time, the CPU-bound minimum (CPU time used: what the wall would be if the
sleeps overlapped perfectly and the machine were free), CPU per execution and
peak RSS, and two figures that explain the CPU: the garbage collector's share
per execution (its thread CPU time) and how many executions shared a
commit (the data plane's batches: in one process each batch is one
transaction). Not a test: the numbers move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


class Loop(Plan):
    name = "loop"

    def __init__(self, tasks: int) -> None:
        self.tasks = tasks

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        done = ctx.upstream[0].value if ctx.upstream else 0
        return Finish(done) if done >= self.tasks else Next({"wait": done})


class Wait(Task):
    name = "wait"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def run(self, ctx: TaskContext) -> int:
        await asyncio.sleep(self.seconds)
        return int(ctx.input) + 1


def sleeping(tasks: int, sleep_ms: float) -> AgentGraph:
    return AgentGraph(
        "bench_scale",
        version="1.0.0",
        entry="loop",
        nodes=[Loop(tasks), Wait(sleep_ms / 1000)],
        edges=[normal("loop", "wait"), normal("wait", "loop"), final("loop")],
        max_iterations=tasks * 2 + 10,
    )


async def one_size(lifetimes: int, tasks: int, sleep_ms: float) -> dict[str, float]:
    graph = sleeping(tasks, sleep_ms)
    collector = CollectorClock()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=home, executor_concurrency=max(1000, lifetimes))
        async with Runtime(settings, [graph]) as rt:
            await rt.wait(await rt.start_lifetime(graph), timeout=60)  # warm up
            batches = data_plane_batches()
            gc.callbacks.append(collector)
            c0, w0 = time.process_time(), time.perf_counter()
            ids = [await rt.start_lifetime(graph) for _ in range(lifetimes)]
            await asyncio.gather(*(rt.wait(i, timeout=3600) for i in ids))
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            gc.callbacks.remove(collector)
            batches = data_plane_batches() - batches
            executions = len(await rt.store.executions(ids[0])) * lifetimes
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "wall": wall,
        "cpu": cpu,
        "executions": executions,
        "rss_mib": rss_kib / 1024,
        "gc": collector.seconds,
        "batches": batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lifetimes", default="1000,10000")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--sleep-ms", type=float, default=50)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(one_size(args.child, args.tasks, args.sleep_ms))))
        return
    print(
        f"load average {os.getloadavg()[0]:.1f}; each lifetime: {args.tasks} Tasks of "
        f"{args.sleep_ms:g} ms (+ the Plans), all started at once, embedded (SQLite)"
    )
    print(
        f"  {'lifetimes':>9} {'wall':>8} {'cpu-bound':>9} {'µs/execution':>12} {'peak RSS':>9}"
        f" {'collector µs/exec':>17} {'executions/commit':>17}"
    )
    for lifetimes in (int(n) for n in args.lifetimes.split(",")):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(lifetimes),
                "--tasks",
                str(args.tasks),
                "--sleep-ms",
                str(args.sleep_ms),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        # The sleeps of one lifetime run one after another: its lower bound.
        floor = args.tasks * args.sleep_ms / 1000
        print(
            f"  {lifetimes:>9,} {r['wall']:7.1f}s {max(r['cpu'], floor):8.1f}s"
            f" {r['cpu'] / r['executions'] * 1e6:12.0f} {r['rss_mib']:5.0f} MiB"
            f" {r['gc'] / r['executions'] * 1e6:17.0f}"
            f" {r['executions'] / max(r['batches'], 1):17.0f}"
        )


if __name__ == "__main__":
    main()
