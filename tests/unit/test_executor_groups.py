"""Executors read Task and Plan inputs in separate consumer groups; with
``group_per_graph`` each set of graphs has groups of its own, and an executor runs
only its graphs' inputs (another graph's are committed unrun, never failed)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tickrail.adapters import Message
from tickrail.adapters.blob.memory import MemoryBlobStore
from tickrail.adapters.bus.memory import MemoryBus
from tickrail.adapters.store.memory import MemoryStore
from tickrail.sdk._payload import encode
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.control_plane.service import ControlPlane
from tickrail.services.dispatch import DispatchSigner
from tickrail.services.executor.worker import Executor
from tickrail.services.topics import Topics

from .graphs import Work, single_task_graph


def test_task_and_plan_inputs_have_separate_groups() -> None:
    graph = single_task_graph(Work("w"), "g1")
    executor = Executor(MemoryBus(), MemoryBlobStore(), Topics(), [graph], group="x-executor")
    assert executor.group_of("tasks") == "x-executor-tasks"
    assert executor.group_of("plans") == "x-executor-plans"


def test_per_graph_groups_are_named_by_the_graphs_served() -> None:
    one, two = single_task_graph(Work("w"), "g1"), single_task_graph(Work("w"), "g2")
    topics, bus, blobs = Topics(), MemoryBus(), MemoryBlobStore()
    both = Executor(bus, blobs, topics, [two, one], group="x-executor", group_per_graph=True)
    assert both.group_of("tasks") == "x-executor-tasks-g1+g2"
    alone = Executor(bus, blobs, topics, [one], group="x-executor", group_per_graph=True)
    assert alone.group_of("tasks") == "x-executor-tasks-g1"
    assert Settings(executor_group_per_graph=True).executor_group_per_graph


def start(topics: Topics, graph: AgentGraph, lifetime_id: str) -> pb.LifetimeCommand:
    return pb.LifetimeCommand(
        command_id=f"start-{lifetime_id}",
        lifetime_id=lifetime_id,
        tenant_id="acme",
        start=pb.StartLifetime(
            lifetime_id=lifetime_id, tenant_id="acme", graph=graph.spec, input=encode(1)
        ),
    )


async def test_each_graphs_executor_runs_only_its_own_graphs_inputs() -> None:
    one, two = single_task_graph(Work("w"), "g1"), single_task_graph(Work("w"), "g2")
    topics = Topics()
    async with MemoryBus() as bus, MemoryStore() as store, MemoryBlobStore() as blobs:
        plane = ControlPlane(bus, store, topics, signer=DispatchSigner(b"k" * 32))
        await plane.handle(
            [
                Message(topics.commands(), lid, start(topics, g, lid).SerializeToString())
                for lid, g in (("lt-1", one), ("lt-2", two))
            ]
        )
        executions = await bus.subscribe(topics.every("executions"), "test-watch")
        executors = [
            Executor(bus, blobs, topics, [g], group="x-executor", group_per_graph=True)
            for g in (one, two)
        ]
        stopping = asyncio.Event()
        runs = [asyncio.create_task(e.run(stopping, grace=1)) for e in executors]
        ran: list[tuple[str, str, int]] = []
        deadline = time.monotonic() + 20
        try:
            while len(ran) < 2 and time.monotonic() < deadline:
                for message in await executions.poll(100, timeout=0.2):
                    envelope = pb.ExecutionEnvelope.FromString(message.value)
                    header = envelope.task.header
                    ran.append((header.lifetime_id, header.graph_id, header.status))
            await asyncio.sleep(0.3)  # time for a wrong run, if any, to show
            for message in await executions.poll(100, timeout=0.2):
                envelope = pb.ExecutionEnvelope.FromString(message.value)
                header = envelope.task.header
                ran.append((header.lifetime_id, header.graph_id, header.status))
        finally:
            stopping.set()
            for run in runs:
                with contextlib.suppress(Exception):
                    await run
        ok = pb.EXECUTION_STATUS_SUCCEEDED
        assert sorted(ran) == [("lt-1", "g1", ok), ("lt-2", "g2", ok)]
