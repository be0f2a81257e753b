"""The lifecycle API through a real gRPC channel: every RPC against an embedded runtime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from tickrail.sdk import Task, TaskContext
from tickrail.sdk.client import TickrailClient
from tickrail.sdk.errors import (
    AdapterError,
    ConfigurationError,
    ExecutionNotFoundError,
    LifetimeNotFoundError,
)
from tickrail.sdk.loading import load_graph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.api import ApiServer, Authenticator, serve_api
from tickrail.services.config import Settings
from tickrail.services.lifecycle import LifecycleService
from tickrail.services.runtime import Runtime

from .graphs import fan_out_graph, single_task_graph

T = TypeVar("T")
TOKENS = {"acme": "acme-token-0123456789abcdef", "globex": "globex-token-0123456789abcdef"}
HUMAN_REVIEW = str(Path(__file__).resolve().parents[2] / "examples" / "human_review.py")
RESULT_BYTES = bytes(range(256)) * 16  # 4 KiB: over the tests' 1 KiB offload threshold


class BigResult(Task):
    name = "big_result"

    async def run(self, ctx: TaskContext) -> bytes:
        return RESULT_BYTES


class Slow(Task):
    name = "slow"

    async def run(self, ctx: TaskContext) -> str:
        await asyncio.sleep(0.3)
        ctx.record_usage(tokens_in=7, tokens_out=3, cost_usd=0.5)
        return "done"


def graphs() -> list[Any]:
    return [
        fan_out_graph(),
        single_task_graph(BigResult(), "big"),
        single_task_graph(Slow(), "slow"),
        load_graph(HUMAN_REVIEW),
    ]


@dataclass
class Served:
    runtime: Runtime
    api: ApiServer
    backend: LifecycleService

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.api.port}"

    def client(self, tenant: str = "acme", token: str | None = "", **kw: Any) -> TickrailClient:
        """A client for ``tenant`` with its own token unless ``token`` says otherwise."""
        chosen = TOKENS.get(tenant) if token == "" else token
        return TickrailClient(self.address, tenant=tenant, token=chosen, **kw)

    def graph(self, graph_id: str) -> Any:
        return next(g for g in self.runtime.graphs if g.graph_id == graph_id)


@contextlib.asynccontextmanager
async def served(tmp_path: Path, **settings: Any) -> AsyncIterator[Served]:
    config = Settings(profile="test", home=str(tmp_path), offload_threshold=1024, **settings)
    async with Runtime(config, graphs()) as runtime:
        backend = LifecycleService(runtime)
        api = await serve_api(backend, address="127.0.0.1:0", auth=Authenticator(TOKENS))
        try:
            yield Served(runtime, api, backend)
        finally:
            await api.stop(None)  # before the runtime closes and before the loop does


def code(error: BaseException) -> grpc.StatusCode:
    """The status code behind an SDK error raised by the client."""
    cause = error.__cause__
    assert isinstance(cause, grpc.aio.AioRpcError), f"{error!r} has no gRPC cause"
    result: grpc.StatusCode = cause.code()
    return result


async def events_of(client: TickrailClient, lifetime_id: str, **kw: Any) -> list[pb.LifetimeEvent]:
    async with asyncio.timeout(20):
        return [e async for e in client.watch(lifetime_id, **kw)]


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = 10) -> T:
    """Poll ``check`` until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.02)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as s:
        yield s


def kinds(events: list[pb.LifetimeEvent]) -> list[str]:
    return [e.WhichOneof("kind") or "" for e in events]


async def run_to_end(client: TickrailClient, graph: Any, value: Any = None) -> str:
    lifetime_id = await client.start(graph, value)
    events = await events_of(client, lifetime_id)
    assert kinds(events)[-1] == "completed", kinds(events)
    return lifetime_id


# ---- start, watch, get --------------------------------------------------------


async def test_start_then_watch_follows_the_lifetime_to_completion(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await client.start(stack.graph("fan_out"), labels={"team": "a"})
        events = await events_of(client, lifetime_id)
    assert kinds(events)[0] == "started" and kinds(events)[-1] == "completed"
    assert events[0].started.labels["team"] == "a"
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > 0
    assert all(e.lifetime_id == lifetime_id and e.tenant_id == "acme" for e in events)


async def test_watch_resumes_after_a_seq_and_ends_at_once_for_an_ended_lifetime(
    stack: Served,
) -> None:
    async with stack.client() as client:
        lifetime_id = await run_to_end(client, stack.graph("fan_out"))
        everything = await events_of(client, lifetime_id)
        tail = await events_of(client, lifetime_id, after_seq=everything[1].seq)
        assert tail == everything[2:]
        assert await events_of(client, lifetime_id, after_seq=everything[-1].seq) == []
        # follow_forever keeps the stream open after the end; closing it is clean
        seen: list[pb.LifetimeEvent] = []
        async with contextlib.aclosing(client.watch(lifetime_id, follow_forever=True)) as stream:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    async for event in stream:
                        seen.append(event)
        assert seen == everything


async def test_get_returns_summary_executions_and_events(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await run_to_end(client, stack.graph("fan_out"))
        detail = await client.get(lifetime_id)
        watched = await events_of(client, lifetime_id)
    info = detail.info
    assert (info.lifetime_id, info.tenant_id, info.graph_id) == (lifetime_id, "acme", "fan_out")
    assert info.status == "COMPLETED" and info.events == len(detail.events)
    assert info.started_at <= info.updated_at
    assert sorted(e.header.name for e in detail.executions) == ["a", "b", "gather", "start"]
    assert [e.kind for e in detail.executions] == ["plan", "task", "task", "plan"]
    seqs = [e.seq for e in detail.executions] + [e.seq for e in detail.events]
    assert len(set(seqs)) == len(seqs)  # one sequence orders executions and events
    assert detail.events == watched


async def test_a_start_retried_with_the_same_id_is_recorded_once(stack: Served) -> None:
    graph = stack.graph("fan_out")
    async with stack.client() as client:
        first = await client.start(graph, {"x": 1}, lifetime_id="order-42")
        again = await client.start(graph, {"x": 1}, lifetime_id="order-42")
        assert first == again == "order-42"
        await events_of(client, first)
        detail = await client.get(first)
        assert kinds(detail.events).count("started") == 1
        with pytest.raises(ConfigurationError) as refused:
            await client.start(graph, {"x": 2}, lifetime_id="order-42")
        assert code(refused.value) == grpc.StatusCode.ALREADY_EXISTS


# ---- list -----------------------------------------------------------------------


async def test_list_filters_by_graph_status_and_time_and_pages_newest_first(
    stack: Served,
) -> None:
    fan_out, big = stack.graph("fan_out"), stack.graph("big")
    async with stack.client() as client, stack.client("globex") as other:
        started = [await run_to_end(client, g) for g in (fan_out, big, fan_out, big, fan_out)]
        await run_to_end(other, fan_out)
        newest_first = started[::-1]

        pages, token = [], ""
        while True:
            page = await client.list(page_size=2, page_token=token)
            pages.append([i.lifetime_id for i in page.lifetimes])
            token = page.next_page_token
            if not token:
                break
        assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
        assert [i.lifetime_id async for i in client.iter_lifetimes(page_size=2)] == newest_first

        by_graph = await client.list(graph_id="fan_out", page_size=2)
        assert [i.lifetime_id for i in by_graph.lifetimes] == [started[4], started[2]]
        rest = await client.list(
            graph_id="fan_out", page_size=2, page_token=by_graph.next_page_token
        )
        assert [i.lifetime_id for i in rest.lifetimes] == [started[0]]
        assert rest.next_page_token == ""

        assert len((await client.list(status="COMPLETED")).lifetimes) == 5
        assert (await client.list(status="RUNNING")).lifetimes == []

        infos = {i.lifetime_id: i for i in (await client.list()).lifetimes}
        middle = infos[started[2]].started_at
        after = await client.list(started_after=middle)
        assert [i.lifetime_id for i in after.lifetimes] == newest_first[:3]
        before = await client.list(started_before=middle)
        assert [i.lifetime_id for i in before.lifetimes] == newest_first[3:]

        # a token only continues the query it came from
        with pytest.raises(ConfigurationError) as mismatch:
            await client.list(graph_id="big", page_token=by_graph.next_page_token)
        assert code(mismatch.value) == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in str(mismatch.value)
        with pytest.raises(ConfigurationError) as garbage:
            await client.list(page_token="not-a-token")
        assert code(garbage.value) == grpc.StatusCode.INVALID_ARGUMENT


# ---- pause, resume, abort ---------------------------------------------------------


async def test_pause_holds_the_lifetime_and_resume_finishes_it(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await client.start(stack.graph("slow"))
        command_id = await client.pause(lifetime_id, reason="lunch")
        events = await until(lambda: _kinds_upto(client, lifetime_id, "paused"))
        assert events[-1].paused.reason == "lunch"
        assert events[-1].event_id.endswith(command_id)
        # the running Task finishes meanwhile; its result is held, not routed
        await until(lambda: _executions(client, lifetime_id, 1))
        assert (await client.get(lifetime_id)).info.status == "PAUSED"
        await client.pause(lifetime_id)  # pausing again changes nothing

        await client.resume(lifetime_id, reason="back")
        rest = await events_of(client, lifetime_id, after_seq=events[-1].seq)
        assert kinds(rest) == ["routed", "resumed", "routed", "completed"]
        assert rest[0].routed.deferred  # held while paused
        assert rest[1].resumed.reason == "back"

        for action in (client.pause, client.resume):
            with pytest.raises(ConfigurationError) as ended:
                await action(lifetime_id)
            assert code(ended.value) == grpc.StatusCode.FAILED_PRECONDITION
            assert "COMPLETED" in str(ended.value)


async def test_resume_of_a_running_lifetime_is_refused(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await client.start(stack.graph("slow"))
        with pytest.raises(ConfigurationError) as running:
            await client.resume(lifetime_id)
        assert code(running.value) == grpc.StatusCode.FAILED_PRECONDITION
        assert "not PAUSED" in str(running.value)
        await events_of(client, lifetime_id)


async def test_abort_stops_the_lifetime_and_is_idempotent(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await client.start(stack.graph("slow"))
        await client.abort(lifetime_id, reason="wrong input")
        events = await events_of(client, lifetime_id)
        assert kinds(events)[-1] == "aborted"
        assert events[-1].aborted.reason == "wrong input"
        assert (await client.get(lifetime_id)).info.status == "ABORTED"
        await client.abort(lifetime_id)  # a retried abort is fine
        done = await run_to_end(client, stack.graph("fan_out"))
        with pytest.raises(ConfigurationError) as completed:
            await client.abort(done)
        assert code(completed.value) == grpc.StatusCode.FAILED_PRECONDITION


async def test_resume_delivers_human_input_to_the_waiting_execution(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await client.start(stack.graph("human_review"), {"change": "x"})
        waiting = await until(lambda: _waiting(client, lifetime_id, 2))
        with pytest.raises(ConfigurationError) as which:
            await client.resume(lifetime_id, input="approve")
        assert code(which.value) == grpc.StatusCode.INVALID_ARGUMENT
        assert "exec_id" in str(which.value)
        with pytest.raises(ExecutionNotFoundError):
            await client.resume(lifetime_id, input="approve", exec_id="no-such-exec")
        for exec_id in waiting.values():
            await client.resume(lifetime_id, input="approve", exec_id=exec_id)
        events = await events_of(client, lifetime_id)
    assert kinds(events)[-1] == "completed"
    answers = [e.resumed for e in events if e.WhichOneof("kind") == "resumed"]
    assert sorted(a.exec_id for a in answers) == sorted(waiting.values())


async def _kinds_upto(
    client: TickrailClient, lifetime_id: str, kind: str
) -> list[pb.LifetimeEvent] | None:
    events = (await client.get(lifetime_id)).events
    return events if kinds(events)[-1] == kind else None


async def _executions(client: TickrailClient, lifetime_id: str, count: int) -> bool:
    return len((await client.get(lifetime_id)).executions) >= count


async def _waiting(client: TickrailClient, lifetime_id: str, count: int) -> dict[str, str] | None:
    detail = await client.get(lifetime_id)
    latest = {}
    for execution in detail.executions:
        if execution.kind == "task":
            latest[execution.header.name] = execution.header
    waiting = {
        name: h.exec_id for name, h in latest.items() if h.status == pb.EXECUTION_STATUS_WAITING
    }
    return waiting if len(waiting) == count and detail.info.status == "PAUSED" else None


# ---- executions and usage -----------------------------------------------------------


async def test_get_execution_returns_offloaded_results_byte_for_byte(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await run_to_end(client, stack.graph("big"))
        (recorded,) = (await client.get(lifetime_id)).executions
        output = recorded.envelope.task.result.output
        assert output.WhichOneof("body") == "blob"  # over the 1 KiB threshold
        fetched = await client.execution(recorded.header.exec_id)
        assert fetched.data == RESULT_BYTES and fetched.value == RESULT_BYTES
        assert fetched.content_type == "application/octet-stream"
        assert fetched.execution == recorded

        small = await run_to_end(client, stack.graph("fan_out"))
        tasks = [e for e in (await client.get(small)).executions if e.kind == "task"]
        inline = await client.execution(tasks[0].header.exec_id)
        assert inline.value == {"node": tasks[0].header.name}

        with pytest.raises(ExecutionNotFoundError) as missing:
            await client.execution("no-such-exec")
        assert code(missing.value) == grpc.StatusCode.NOT_FOUND


async def test_usage_sums_telemetry_by_node_lifetime_tenant_and_day(stack: Served) -> None:
    fan_out = stack.graph("fan_out")
    async with stack.client() as client, stack.client("globex") as other:
        first = await run_to_end(client, fan_out)
        second = await run_to_end(client, fan_out)
        await run_to_end(other, fan_out)  # another tenant's usage is not counted

        by_node = {r.key: r for r in await client.usage(lifetime_id=first, group_by="node")}
        assert sorted(by_node) == ["fan_out/a", "fan_out/b", "fan_out/gather", "fan_out/start"]
        a = by_node["fan_out/a"]
        assert (a.tokens_in, a.tokens_out, a.executions) == (10, 5, 1)
        assert a.cost_usd == pytest.approx(0.001)
        assert by_node["fan_out/start"].tokens_in == 0

        by_lifetime = {r.key: r for r in await client.usage(group_by="lifetime")}
        assert sorted(by_lifetime) == sorted([first, second])
        for row in by_lifetime.values():
            assert (row.tokens_in, row.tokens_out, row.executions) == (20, 10, 4)
            assert row.cost_usd == pytest.approx(0.002)

        (tenant,) = await client.usage()
        assert (tenant.key, tenant.tokens_in, tenant.tokens_out, tenant.executions) == (
            "acme",
            40,
            20,
            8,
        )
        (day,) = await client.usage(group_by="day")
        assert day.executions == 8 and len(day.key) == 10
        all_nodes = await client.usage(group_by="node")
        assert sum(r.tokens_in for r in all_nodes) == 40


# ---- replay and fork (the control plane's modules) -------------------------------------


async def test_replay_reports_a_recorded_lifetime_as_consistent(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await run_to_end(client, stack.graph("fan_out"))
        report = await client.replay(lifetime_id)
        assert report.ok and report.divergence is None
        assert report.checked == len((await client.get(lifetime_id)).events)
        rerun = await client.replay(lifetime_id, rerun_plans=True)
        assert rerun.ok and rerun.plan_differences == []


async def test_fork_continues_from_an_execution_with_a_replaced_result(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await run_to_end(client, stack.graph("fan_out"))
        detail = await client.get(lifetime_id)
        a = next(e.header.exec_id for e in detail.executions if e.header.name == "a")
        forked = await client.fork(lifetime_id, a, result={"node": "patched"})
        assert forked != lifetime_id
        events = await events_of(client, forked)
        assert events[0].started.forked_from_lifetime == lifetime_id
        assert kinds(events)[-1] == "completed"
        with pytest.raises(ExecutionNotFoundError):
            await client.fork(lifetime_id, "no-such-exec")


# ---- bad requests ---------------------------------------------------------------------


async def test_bad_arguments_are_invalid_argument_naming_the_field(stack: Served) -> None:
    graph = stack.graph("fan_out")
    broken = pb.GraphSpec()
    broken.CopyFrom(graph.spec)
    broken.entry = "nowhere"
    async with stack.client() as client:
        cases: list[tuple[Any, str]] = [
            (client.start(broken), "graph: entry node 'nowhere' is not defined"),
            (
                client.start(graph, pb.Payload(content_type="application/json", inline=b"{no")),
                "input: content_type is application/json but the body is not JSON",
            ),
            (
                client.start(graph, pb.Payload(blob=pb.BlobRef(uri="file:///etc/passwd"))),
                "input: blob references are not accepted",
            ),
            (client.start(graph, "x" * 2000), "input: 2,000 bytes is more than"),
            (client.start(graph, lifetime_id="bad id/../"), "lifetime_id:"),
            (client.get(""), "lifetime_id: is required"),
            (client.usage(lifetime_id=""), None),
        ]
        for call, message in cases:
            if message is None:
                await call
                continue
            with pytest.raises(ConfigurationError) as refused:
                await call
            assert code(refused.value) == grpc.StatusCode.INVALID_ARGUMENT, message
            assert message in str(refused.value)


async def test_unknown_lifetimes_are_not_found_and_unserved_graphs_are_refused(
    stack: Served,
) -> None:
    async with stack.client() as client:
        for call in (client.get("nope"), client.pause("nope"), client.usage(lifetime_id="nope")):
            with pytest.raises(LifetimeNotFoundError) as missing:
                await call
            assert code(missing.value) == grpc.StatusCode.NOT_FOUND
        with pytest.raises(LifetimeNotFoundError):
            await events_of(client, "nope")
        stranger = single_task_graph(Slow(), "not_served")
        with pytest.raises(ConfigurationError) as unserved:
            await client.start(stranger)
        assert code(unserved.value) == grpc.StatusCode.FAILED_PRECONDITION
        assert "does not serve graph 'not_served'" in str(unserved.value)


async def test_an_unexpected_error_is_internal_without_its_details(
    stack: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(*_: Any) -> None:
        raise RuntimeError("secret detail at /srv/private")

    monkeypatch.setattr(stack.backend, "usage", explode)
    async with stack.client() as client:
        with pytest.raises(AdapterError) as failed:
            await client.usage()
    assert code(failed.value) == grpc.StatusCode.INTERNAL
    assert "secret" not in str(failed.value) and "Traceback" not in str(failed.value)
    incident = str(failed.value).split("incident ")[1].split(";")[0]
    assert any(incident in r.getMessage() and r.exc_info for r in caplog.records)


async def test_many_simultaneous_calls_on_one_channel_all_succeed(stack: Served) -> None:
    async with stack.client() as client:
        lifetime_id = await run_to_end(client, stack.graph("fan_out"))
        details = await asyncio.gather(*(client.get(lifetime_id) for _ in range(400)))
    assert {d.info.status for d in details} == {"COMPLETED"}
