"""The embedded runtime end to end: data plane, control plane and executor in one process."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from tickrail.adapters import Message
from tickrail.sdk import AgentGraph, Task, TaskContext
from tickrail.sdk._payload import read_bytes
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.data_plane.service import DataPlane
from tickrail.services.runtime import Runtime

from .graphs import Flaky, fan_out_graph, loop_graph, single_task_graph


def settings(tmp_path: Path, profile: str = "test", **kw: Any) -> Settings:
    return Settings(profile=profile, home=str(tmp_path / "state"), **kw)


async def run_once(rt: Runtime, graph: AgentGraph, value: Any = None) -> pb.LifetimeEvent:
    lifetime_id = await rt.start_lifetime(graph, value)
    return await rt.wait(lifetime_id, timeout=10)


def envelopes(records: list[Any]) -> list[pb.ExecutionEnvelope]:
    return [pb.ExecutionEnvelope.FromString(r.envelope) for r in records]


def headers(records: list[Any]) -> list[pb.ExecutionHeader]:
    out = []
    for env in envelopes(records):
        out.append(getattr(env, env.WhichOneof("execution") or "task").header)
    return out


async def test_fan_out_and_join_complete_with_every_execution_recorded(tmp_path: Path) -> None:
    graph = fan_out_graph()
    async with Runtime(settings(tmp_path, "embedded"), [graph]) as rt:
        final = await run_once(rt, graph)
        assert final.WhichOneof("kind") == "completed"
        records = await rt.store.executions(final.lifetime_id)
    assert sorted(h.name for h in headers(records)) == ["a", "b", "gather", "start"]
    assert all(h.status == pb.EXECUTION_STATUS_SUCCEEDED for h in headers(records))


async def test_the_same_envelope_published_twice_is_recorded_once(tmp_path: Path) -> None:
    graph = loop_graph(1)
    async with Runtime(settings(tmp_path), [graph], roles=()) as rt:
        dp = DataPlane(rt.bus, rt.store, rt.blobs, rt.topics, signer=rt.signer)
        consumer = await rt.bus.subscribe([rt.topics.persisted("t")], "probe")
        envelope = pb.ExecutionEnvelope(
            task=pb.TaskExecution(
                header=pb.ExecutionHeader(
                    name="step",
                    exec_id="L.1.1",
                    input_id="L.1",
                    lifetime_id="L",
                    tenant_id="t",
                    status=pb.EXECUTION_STATUS_SUCCEEDED,
                    kind=pb.NODE_KIND_TASK,
                    attempt=1,
                )
            )
        )
        envelope.task.header.dispatch_token = rt.signer.token_of(envelope.task.header)
        message = Message(rt.topics.executions("t"), "L", envelope.SerializeToString())
        await dp.handle([message])
        await dp.handle([message])
        assert len(await rt.store.executions("L")) == 1
        refs = [pb.ExecutionRef.FromString(m.value) for m in await consumer.poll(10, 1)]
        assert [r.duplicate for r in refs] == [False, True]
        assert refs[0].seq == refs[1].seq
        await consumer.close()


class Big(Task):
    async def run(self, ctx: TaskContext) -> bytes:
        return bytes(range(256)) * (3 * 1024 * 1024 // 256)


async def test_a_3mb_result_is_offloaded_and_reads_back_identical(tmp_path: Path) -> None:
    graph = single_task_graph(Big(), "big")
    async with Runtime(settings(tmp_path, "embedded"), [graph]) as rt:
        final = await run_once(rt, graph)
        (record,) = await rt.store.executions(final.lifetime_id)
        payload = pb.ExecutionEnvelope.FromString(record.envelope).task.result.output
        assert payload.WhichOneof("body") == "blob"
        assert payload.blob.uri.startswith("file://") and payload.blob.size == 3 * 1024 * 1024
        assert len(record.envelope) < 1024  # the row holds the URI, not the bytes
        data = await read_bytes(payload, rt.blobs)
        assert data == bytes(range(256)) * (3 * 1024 * 1024 // 256)
        assert final.completed.output == payload


async def test_corrupt_blob_is_refused(tmp_path: Path) -> None:
    graph = single_task_graph(Big(), "big")
    async with Runtime(settings(tmp_path, "embedded"), [graph]) as rt:
        final = await run_once(rt, graph)
        payload = final.completed.output
        Path(payload.blob.uri.removeprefix("file://")).write_bytes(b"tampered")
        from tickrail.sdk.errors import BlobIntegrityError

        with pytest.raises(BlobIntegrityError, match="does not match its recorded digest"):
            await read_bytes(payload, rt.blobs)


async def test_retries_record_every_attempt_then_succeed(tmp_path: Path) -> None:
    graph = single_task_graph(Flaky(failures=2), "flaky")
    async with Runtime(settings(tmp_path), [graph]) as rt:
        final = await run_once(rt, graph)
        assert final.WhichOneof("kind") == "completed"
        hs = headers(await rt.store.executions(final.lifetime_id))
    assert [(h.attempt, h.status) for h in hs] == [
        (1, pb.EXECUTION_STATUS_RETRYING),
        (2, pb.EXECUTION_STATUS_RETRYING),
        (3, pb.EXECUTION_STATUS_SUCCEEDED),
    ]


async def test_exhausted_retries_fail_the_lifetime_with_the_error(tmp_path: Path) -> None:
    graph = single_task_graph(Flaky(failures=10), "flaky")
    async with Runtime(settings(tmp_path), [graph]) as rt:
        final = await run_once(rt, graph)
        records = await rt.store.executions(final.lifetime_id)
    assert final.WhichOneof("kind") == "failed"
    assert "failed after 3 attempt(s): ConnectionError: flaky failure 3" in final.failed.reason
    last = envelopes(records)[-1].task
    assert (last.header.status, last.result.error_type) == (
        pb.EXECUTION_STATUS_FAILED,
        "ConnectionError",
    )


class Slow(Task):
    timeout = 0.05

    async def run(self, ctx: TaskContext) -> None:
        await asyncio.sleep(5)


class Crashes(Task):
    async def run(self, ctx: TaskContext) -> None:
        raise KeyError("no such key")


class SyncTask(Task):
    def run(self, ctx: TaskContext) -> int:
        return threading.get_ident()


async def test_timeouts_and_exceptions_become_failed_executions(tmp_path: Path) -> None:
    slow, crash = single_task_graph(Slow(), "slow"), single_task_graph(Crashes(), "crash")
    sync = single_task_graph(SyncTask(), "sync")
    async with Runtime(settings(tmp_path), [slow, crash, sync]) as rt:
        timed_out = await run_once(rt, slow)
        crashed = await run_once(rt, crash)
        after = await run_once(rt, sync)  # the worker is still serving
        record = (await rt.store.executions(timed_out.lifetime_id))[0]
    assert headers([record])[0].status == pb.EXECUTION_STATUS_TIMED_OUT
    assert "ran past its timeout of 0.05 s" in timed_out.failed.reason
    assert "KeyError: 'no such key'" in crashed.failed.reason
    assert after.WhichOneof("kind") == "completed"
    assert int(after.completed.output.inline) != threading.get_ident()  # ran off the loop


async def test_garbage_goes_to_the_dead_letter_topic_and_traffic_continues(tmp_path: Path) -> None:
    graph = loop_graph(2)
    async with Runtime(settings(tmp_path), [graph]) as rt:
        dlq = await rt.bus.subscribe([rt.topics.dead_letter(rt.topics.executions("t"))], "dlq")
        await rt.bus.publish([Message(rt.topics.executions("t"), "x", b"\xff\x00garbage")])
        final = await run_once(rt, graph)
        (dead,) = await dlq.poll(10, 2)
        await dlq.close()
    assert final.WhichOneof("kind") == "completed"
    assert dead.value == b"\xff\x00garbage"
    assert "undecodable ExecutionEnvelope" in dead.headers["tickrail-error"]


async def test_an_executor_without_the_graph_version_fails_the_lifetime_clearly(
    tmp_path: Path,
) -> None:
    graph, other = (
        loop_graph(1),
        AgentGraph(
            "loop",
            version="2.0.0",
            entry="loop",
            nodes=list(loop_graph(1).nodes.values()),
            edges=loop_graph(1).edges,
        ),
    )
    async with Runtime(settings(tmp_path), [other]) as rt:
        final = await run_once(rt, graph)
    assert "serves loop@2.0.0, but the lifetime runs version 1.0.0" in final.failed.reason


async def test_a_restarted_runtime_recovers_pending_work_from_sqlite(tmp_path: Path) -> None:
    graph = loop_graph(3)
    s = settings(tmp_path, "embedded")
    async with Runtime(s, [graph], roles=("data_plane", "control_plane")) as rt:
        lifetime_id = await rt.start_lifetime(graph)
        await asyncio.sleep(0.2)  # the entry input is dispatched, but no executor runs
    async with Runtime(s, [graph]) as rt:
        assert rt.control_plane is not None
        assert await rt.control_plane.recover() == 1
        rt.rearm(lifetime_id)
        final = await rt.wait(lifetime_id, timeout=10)
    assert final.WhichOneof("kind") == "completed"
    assert final.completed.output.inline == b'{"count":3}'


async def test_many_concurrent_lifetimes_all_complete(tmp_path: Path) -> None:
    graph = loop_graph(5)
    async with Runtime(settings(tmp_path, "embedded"), [graph]) as rt:
        ids = [await rt.start_lifetime(graph) for _ in range(50)]
        finals = await asyncio.gather(*(rt.wait(i, timeout=20) for i in ids))
        counts = [len(await rt.store.executions(i)) for i in ids]
    assert {f.WhichOneof("kind") for f in finals} == {"completed"}
    assert counts == [11] * 50


async def test_recovery_claims_only_the_graphs_this_process_serves(tmp_path: Path) -> None:
    served, other = loop_graph(2), single_task_graph(Flaky(failures=0), "elsewhere")
    s = settings(tmp_path, "embedded")
    async with Runtime(s, [served, other], roles=("data_plane", "control_plane")) as rt:
        await rt.start_lifetime(served)
        await rt.start_lifetime(other)
        await asyncio.sleep(0.2)  # both entry inputs dispatched; no executor runs them
    async with Runtime(s, [served], roles=("data_plane", "control_plane")) as rt:
        assert rt.control_plane is not None
        assert await rt.control_plane.recover(graph_ids={"loop"}) == 1
        assert await rt.control_plane.recover() == 2
