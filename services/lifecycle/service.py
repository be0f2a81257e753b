"""The lifecycle operations, once: every front end is a thin caller of these.

``LifecycleService`` implements start, get, list, watch, pause, resume (lift a
hold or answer a person), abort, replay, fork, usage and execution over a
started Runtime, in the lifecycle API's request and response messages (SDK
types, ``tickrail.sdk.pb.lifecycle_pb2``). The gRPC servicer, the embedded
owner's Unix socket and the in-process transport all hand requests to it, and
``TickrailClient`` turns them into Python calls, so the CLI, the API and the
console share one implementation.

Every method takes the caller's tenant, already authenticated. A lifetime or
execution recorded for another tenant is refused exactly like one that does
not exist, so ids of other tenants cannot be probed. Commands are published
to the control plane; reads go to the store; ``watch`` follows the events the
control plane publishes (each one is durable in the store before it is
published, so a wakeup reads the store for it with its seq).

Errors are the SDK's (``tickrail.sdk.errors``): InvalidArgumentError,
NotFoundError (Lifetime/Execution), LifetimeStateError, AlreadyExistsError,
UnavailableError; front ends map them, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncGenerator, Callable, Collection, Iterator
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from tickrail.adapters import EventRecord, LifetimeSummary, Message, StateStore
from tickrail.adapters.store.base import summarize
from tickrail.sdk._payload import read_bytes
from tickrail.sdk.errors import (
    AlreadyExistsError,
    ConfigurationError,
    ExecutionNotFoundError,
    LifetimeNotFoundError,
    LifetimeStateError,
    UnavailableError,
)
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.sdk.pb import lifecycle_pb2 as api
from tickrail.services.control_plane.fork import fork_lifetime, history_length
from tickrail.services.control_plane.projection import rebuild
from tickrail.services.control_plane.replay import replay_lifetime
from tickrail.services.retry import retrying
from tickrail.services.runtime import Runtime
from tickrail.services.usage import usage_rows

from ._outputs import EarlyOutputs, merged
from ._paging import LifetimeQuery, list_page, page_size
from ._resume import resume_command
from ._validate import check_graph_spec, check_new_id, check_payload, require, same_structure

log = logging.getLogger("tickrail.api")

TERMINAL = {
    pb.LIFETIME_STATUS_COMPLETED,
    pb.LIFETIME_STATUS_FAILED,
    pb.LIFETIME_STATUS_ABORTED,
}
TERMINAL_KINDS = {"completed", "failed", "aborted"}
STATUS_NAMES = {v: k.removeprefix("LIFETIME_STATUS_") for k, v in pb.LifetimeStatus.items()}
#: Results larger than this are not returned by GetExecution (gRPC messages are
#: held in memory whole); the caller is told the blob URI instead.
MAX_RESULT_BYTES = 64 * 1024 * 1024


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def summary_message(summary: LifetimeSummary) -> api.LifetimeSummary:
    return api.LifetimeSummary(
        lifetime_id=summary.lifetime_id,
        tenant_id=summary.tenant_id,
        graph_id=summary.graph_id,
        status=summary.status,  # type: ignore[arg-type]  # an int from the store
        started_at=_timestamp(summary.started_at),
        updated_at=_timestamp(summary.updated_at),
        event_count=summary.events,
    )


def _event(record: EventRecord) -> pb.LifetimeEvent:
    event = pb.LifetimeEvent.FromString(record.body)
    event.seq = record.seq  # the body is serialized before the store assigns it
    return event


def _execution_of(envelope: pb.ExecutionEnvelope) -> pb.TaskExecution | pb.PlanExecution:
    return envelope.task if envelope.WhichOneof("execution") == "task" else envelope.plan


#: How long a watch waits for a wakeup before reading the store anyway: a safety
#: net for a wakeup the bus did not deliver, not the way events are found.
WATCH_SAFETY_S = 5.0

GraphResolver = Callable[[pb.GraphSpec, dict[str, str]], AgentGraph | None]


class LifecycleService:
    """The lifecycle operations over ``runtime`` (entered; its adapters open).

    ``start_timeout`` bounds how long a start (or fork) waits for the control
    plane to record it. ``resolve_graph`` lets a process that runs executors load
    a graph it does not serve yet (the embedded owner loads the file its client
    names); without it, a graph this process's executors do not serve is refused.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        start_timeout: float = 10.0,
        max_result_bytes: int = MAX_RESULT_BYTES,
        resolve_graph: GraphResolver | None = None,
        on_started: Callable[[str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.start_timeout = start_timeout
        self.max_result_bytes = max_result_bytes
        self.resolve_graph = resolve_graph
        self.on_started = on_started  # told the id of each lifetime this service sets going
        self._early = EarlyOutputs(runtime.listen)  # streamed before a watch attaches

    @property
    def store(self) -> StateStore:
        return self.runtime.store

    def healthy(self) -> bool:
        """Every role this service's process runs is still running."""
        return self.runtime.alive()

    # ---- ownership ------------------------------------------------------------

    async def _events(self, tenant: str, lifetime_id: str) -> list[EventRecord]:
        """The lifetime's events, after checking it exists and is the caller's.

        Another tenant's lifetime is refused with the very error of a missing
        one: the answer must not tell which ids exist.
        """
        records = await self.store.events(require(lifetime_id, "lifetime_id"))
        if not records or records[0].tenant_id != tenant:
            raise LifetimeNotFoundError(f"no lifetime {lifetime_id!r}")
        return records

    # ---- waiting on the control plane ---------------------------------------

    @contextlib.contextmanager
    def _wakeups(
        self, lifetime_id: str, outputs: list[pb.LifetimeEvent] | None = None
    ) -> Iterator[asyncio.Event]:
        """An Event set whenever the control plane publishes one of the lifetime's events.

        Streamed ``output`` events (``ctx.emit``) are never stored, so a watcher
        can only hear them: they are appended to ``outputs`` when it is given.
        """
        wake = asyncio.Event()

        def heard(event: pb.LifetimeEvent) -> None:
            if outputs is not None and event.WhichOneof("kind") == "output":
                outputs.append(event)
            wake.set()

        stop = self.runtime.listen(lifetime_id, heard)
        try:
            yield wake
        finally:
            stop()

    async def _until_recorded(
        self, lifetime_id: str, wake: asyncio.Event, timeout: float | None
    ) -> None:
        """Wait for the control plane to record the start, so later calls find it."""
        budget = self.start_timeout if timeout is None else min(timeout, self.start_timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(budget, 0.0)
        while True:
            wake.clear()
            if await self.store.events(lifetime_id):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UnavailableError(
                    f"the start of {lifetime_id} was sent but the control plane has not "
                    f"recorded it within {budget:.1f}s; retry with lifetime_id={lifetime_id} "
                    "(a repeated start is recorded once)"
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, WATCH_SAFETY_S)):
                    await self.runtime.unless_failed(wake.wait())

    # ---- commands -------------------------------------------------------------

    async def _publish(self, command: pb.LifetimeCommand) -> None:
        await self.runtime.bus.publish(
            [
                Message(
                    self.runtime.topics.commands(),
                    command.lifetime_id,
                    command.SerializeToString(),
                )
            ]
        )

    async def start(
        self, tenant: str, request: api.StartLifetimeRequest, *, timeout: float | None = None
    ) -> api.StartLifetimeResponse:
        settings = self.runtime.settings
        check_graph_spec(request.graph)
        check_payload(request.input, "input", limit=settings.offload_threshold)
        self._check_served(request.graph, dict(request.labels))
        if settings.per_tenant_topics and tenant not in settings.tenants:
            raise ConfigurationError(
                f"tenant {tenant!r} has no topics in this deployment (add it to 'tenants')"
            )
        lifetime_id = (
            check_new_id(request.lifetime_id, "lifetime_id")
            if request.lifetime_id
            else uuid.uuid4().hex[:20]
        )
        begin = pb.StartLifetime(
            lifetime_id=lifetime_id,
            tenant_id=tenant,
            graph=request.graph,
            input=request.input,
            labels=dict(request.labels),
        )
        if await self._already_started(tenant, begin):
            return api.StartLifetimeResponse(lifetime_id=lifetime_id)
        self._early.collect(lifetime_id)
        with self._wakeups(lifetime_id) as wake:
            await self._publish(
                pb.LifetimeCommand(
                    command_id=f"start-{lifetime_id}",
                    lifetime_id=lifetime_id,
                    tenant_id=tenant,
                    start=begin,
                )
            )
            if self.on_started is not None:
                self.on_started(lifetime_id)
            await self._until_recorded(lifetime_id, wake, timeout)
        return api.StartLifetimeResponse(lifetime_id=lifetime_id)

    def _check_served(self, spec: pb.GraphSpec, labels: dict[str, str]) -> None:
        """With executors in this process, refuse graphs they cannot run.

        A process in front of a cloud deployment runs no executor and cannot
        know what the executors serve, so it lets any valid graph through.
        """
        if "executor" not in self.runtime.roles:
            return
        served = {g.graph_id: g for g in self.runtime.graphs}
        graph = served.get(spec.graph_id)
        if graph is None and self.resolve_graph is not None:
            graph = self.resolve_graph(spec, labels)
            if graph is not None:
                self.runtime.add_graph(graph)
        if graph is None:
            names = ", ".join(sorted(served)) or "none"
            raise ConfigurationError(
                f"this server does not serve graph {spec.graph_id!r} (it serves: {names})"
            )
        if graph.version != spec.version or not same_structure(graph.spec, spec):
            raise ConfigurationError(
                f"graph {spec.graph_id}@{spec.version} differs from the one this server "
                f"serves ({graph.graph_id}@{graph.version})"
            )

    async def _already_started(self, tenant: str, begin: pb.StartLifetime) -> bool:
        """A retried start of the same lifetime is a no-op; a different one is refused."""
        records = await self.store.events(begin.lifetime_id)
        if not records:
            return False
        started = _event(records[0]).started
        same = (
            records[0].tenant_id == tenant
            and started.graph == begin.graph
            and started.input == begin.input
            and dict(started.labels) == dict(begin.labels)
        )
        if not same:
            raise AlreadyExistsError(f"lifetime id {begin.lifetime_id!r} is taken")
        return True

    async def _command(
        self, tenant: str, lifetime_id: str, kind: str, allowed: Collection[int], **body: Any
    ) -> str:
        records = await self._events(tenant, lifetime_id)
        status = records[-1].status
        if status not in allowed:
            raise LifetimeStateError(
                f"lifetime {lifetime_id} is {STATUS_NAMES.get(status, status)}; cannot {kind} it"
            )
        command_id = f"{kind}-{uuid.uuid4().hex[:16]}"
        command = pb.LifetimeCommand(
            command_id=command_id, lifetime_id=lifetime_id, tenant_id=tenant, **body
        )
        await self._publish(command)
        return command_id

    async def pause(
        self, tenant: str, request: api.PauseLifetimeRequest
    ) -> api.PauseLifetimeResponse:
        # Pausing a PAUSED lifetime is accepted (and changes nothing), so a retry is safe.
        allowed = {pb.LIFETIME_STATUS_RUNNING, pb.LIFETIME_STATUS_PAUSED}
        reason = request.reason or "paused through the lifecycle API"
        command_id = await self._command(
            tenant, request.lifetime_id, "pause", allowed, pause=pb.LifetimePaused(reason=reason)
        )
        return api.PauseLifetimeResponse(command_id=command_id)

    async def resume(
        self, tenant: str, request: api.ResumeLifetimeRequest
    ) -> api.ResumeLifetimeResponse:
        """Lift a pause, or answer a WAITING execution (see ``_resume``)."""
        check_payload(request.input, "input", limit=self.runtime.settings.offload_threshold)
        records = await self._events(tenant, request.lifetime_id)
        if records[-1].status != pb.LIFETIME_STATUS_PAUSED:
            status = STATUS_NAMES.get(records[-1].status, records[-1].status)
            raise LifetimeStateError(f"lifetime {request.lifetime_id} is {status}, not PAUSED")
        state = rebuild(
            [pb.LifetimeEvent.FromString(r.body) for r in records],
            {
                r.exec_id: pb.ExecutionEnvelope.FromString(r.envelope)
                for r in await self.store.executions(request.lifetime_id)
            },
        )
        assert state is not None  # the log starts with its `started` event
        if request.exec_id and request.exec_id not in state.waiting:
            known = await self.store.get_execution(request.exec_id)
            if known is None or known.lifetime_id != request.lifetime_id:
                raise ExecutionNotFoundError(
                    f"exec_id: lifetime {request.lifetime_id!r} has no execution "
                    f"{request.exec_id!r}"
                )
        resume = resume_command(state, request)
        # The resumed work runs on this process's executors: make sure they have
        # the graph (an owner loads it from the start's label), or refuse now
        # rather than let the node fail the lifetime with "does not serve".
        started = pb.LifetimeEvent.FromString(records[0].body).started
        self._check_served(started.graph, dict(started.labels))
        command_id = await self._command(
            tenant, request.lifetime_id, "resume", {pb.LIFETIME_STATUS_PAUSED}, resume=resume
        )
        if self.on_started is not None:
            self.on_started(request.lifetime_id)
        if self.runtime.control_plane is not None:
            # This process owns the lifetime now: work that was in flight when
            # a previous owner stopped is dispatched again (under its own ids).
            await self.runtime.control_plane.recover([request.lifetime_id])
        return api.ResumeLifetimeResponse(command_id=command_id)

    async def abort(
        self, tenant: str, request: api.AbortLifetimeRequest
    ) -> api.AbortLifetimeResponse:
        # Aborting an ABORTED lifetime is accepted (and changes nothing), so a retry is safe.
        allowed = {
            pb.LIFETIME_STATUS_RUNNING,
            pb.LIFETIME_STATUS_PAUSED,
            pb.LIFETIME_STATUS_ABORTED,
        }
        reason = request.reason or "aborted through the lifecycle API"
        command_id = await self._command(
            tenant, request.lifetime_id, "abort", allowed, abort=pb.LifetimeAborted(reason=reason)
        )
        self.runtime.cancel_work(request.lifetime_id)
        return api.AbortLifetimeResponse(command_id=command_id)

    # ---- reads ----------------------------------------------------------------

    async def get(self, tenant: str, request: api.GetLifetimeRequest) -> api.GetLifetimeResponse:
        records = await self._events(tenant, request.lifetime_id)
        summary = summarize(records)
        executions = await self.store.executions(request.lifetime_id)
        return api.GetLifetimeResponse(
            summary=summary_message(summary),
            executions=[
                api.RecordedExecution(
                    seq=r.seq, envelope=pb.ExecutionEnvelope.FromString(r.envelope)
                )
                for r in executions
            ],
            events=[_event(r) for r in records],
        )

    async def list(
        self, tenant: str, request: api.ListLifetimesRequest
    ) -> api.ListLifetimesResponse:
        query = LifetimeQuery(
            tenant_id=tenant,
            graph_id=request.graph_id,
            status=request.status,
            started_after=request.started_after.ToNanoseconds() / 1e9
            if request.HasField("started_after")
            else None,
            started_before=request.started_before.ToNanoseconds() / 1e9
            if request.HasField("started_before")
            else None,
        )

        async def newest(limit: int) -> list[LifetimeSummary]:
            return await self.store.list_lifetimes(tenant_id=tenant, limit=limit)

        rows, token = await list_page(
            newest, query, page_size(request.page_size), request.page_token
        )
        return api.ListLifetimesResponse(
            lifetimes=[summary_message(r) for r in rows], next_page_token=token
        )

    async def watch(
        self, tenant: str, request: api.WatchLifetimeRequest
    ) -> AsyncGenerator[pb.LifetimeEvent, None]:
        """Events after ``after_seq``: the recorded ones, then each as it is published,
        with the ``output`` a running Task streams (live only, never recorded).

        Ends after the event that completes, fails or aborts the lifetime (or at
        once if it had ended before ``after_seq``), unless ``follow_forever``.
        """
        lifetime_id = request.lifetime_id
        outputs: list[pb.LifetimeEvent] = []  # streamed, live only (seq 0)
        with self._wakeups(lifetime_id, outputs) as wake:
            outputs[:0] = self._early.take(lifetime_id)  # no await between: no gap
            # Listening before the first read: nothing published meanwhile is missed.
            records = await self._events(tenant, lifetime_id)
            after = request.after_seq
            while True:
                fresh = [r for r in records if r.seq > after]
                heard, outputs[:] = list(outputs), []
                for output, record in merged(heard, fresh):
                    if record is None:
                        assert output is not None
                        yield output
                        continue
                    after = record.seq
                    yield _event(record)
                    # By kind, not status: every event of one decision is stored with
                    # the status after the whole decision.
                    if record.kind in TERMINAL_KINDS and not request.follow_forever:
                        return
                ended = bool(records) and records[-1].status in TERMINAL
                if not fresh and ended and not request.follow_forever:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(WATCH_SAFETY_S):
                        # a role of this process that dies ends the watch, named
                        await self.runtime.unless_failed(wake.wait())
                wake.clear()  # before the read: a publish during it wakes the next wait
                # A follower outlives a store outage (docs/deploy.md, "Outages").
                records = await retrying(
                    functools.partial(self.store.events, lifetime_id, after_seq=after),
                    what=f"following {lifetime_id}",
                    health=self.runtime.health,
                )

    async def execution(
        self, tenant: str, request: api.GetExecutionRequest
    ) -> api.GetExecutionResponse:
        exec_id = require(request.exec_id, "exec_id")
        record = await self.store.get_execution(exec_id)
        if record is None or record.tenant_id != tenant:
            raise ExecutionNotFoundError(f"no execution {exec_id!r}")
        envelope = pb.ExecutionEnvelope.FromString(record.envelope)
        output = _execution_of(envelope).result.output
        if output.WhichOneof("body") == "blob" and output.blob.size > self.max_result_bytes:
            raise ConfigurationError(
                f"the result is {output.blob.size:,} bytes, more than this API returns "
                f"({self.max_result_bytes:,}); it is stored at {output.blob.uri}"
            )
        data = await read_bytes(output, self.runtime.blobs, tenant=record.tenant_id)
        return api.GetExecutionResponse(
            execution=api.RecordedExecution(seq=record.seq, envelope=envelope),
            result=data,
            content_type=output.content_type,
        )

    async def usage(self, tenant: str, request: api.GetUsageRequest) -> api.GetUsageResponse:
        if request.lifetime_id:
            await self._events(tenant, request.lifetime_id)
            lifetime_ids = [request.lifetime_id]
        else:
            # Every lifetime of the tenant, read whole: O(executions of the tenant)
            # per call. A per-tenant rollup kept by the data plane would make it cheap.
            summaries = await self.store.list_lifetimes(tenant_id=tenant, limit=10**9)
            lifetime_ids = [s.lifetime_id for s in summaries]
        records = []
        for lifetime_id in lifetime_ids:
            records.extend(await self.store.executions(lifetime_id))
        return api.GetUsageResponse(rows=usage_rows(records, request.group_by))

    async def _check_execution(
        self, tenant: str, lifetime_id: str, exec_id: str, field: str
    ) -> None:
        await self._events(tenant, lifetime_id)
        record = await self.store.get_execution(exec_id)
        if record is None or record.lifetime_id != lifetime_id:
            raise ExecutionNotFoundError(
                f"{field}: lifetime {lifetime_id!r} has no execution {exec_id!r}"
            )

    # ---- replay and fork --------------------------------------------------------

    async def replay(
        self, tenant: str, request: api.ReplayLifetimeRequest
    ) -> api.ReplayLifetimeResponse:
        records = await self._events(tenant, request.lifetime_id)
        graphs = list(self.runtime.graphs)
        if request.rerun_plans and self.resolve_graph is not None:
            started = _event(records[0]).started
            if not any(g.graph_id == started.graph.graph_id for g in graphs):
                graph = self.resolve_graph(started.graph, dict(started.labels))
                if graph is not None:
                    graphs.append(graph)
        report = await replay_lifetime(
            self.store,
            request.lifetime_id,
            graphs=graphs,
            rerun_plans=request.rerun_plans,
            blobs=self.runtime.blobs,  # recorded Plan inputs may be offloaded
        )
        response = api.ReplayLifetimeResponse(ok=report.ok, checked=report.checked)
        if report.divergence is not None:
            d = report.divergence
            response.divergence.CopyFrom(
                api.Divergence(seq=d.seq, event_id=d.event_id, expected=d.expected, got=d.got)
            )
        response.plan_differences.extend(
            api.PlanDifference(exec_id=p.exec_id, name=p.name, expected=p.expected, got=p.got)
            for p in report.plan_differences
        )
        return response

    async def fork(
        self, tenant: str, request: api.ForkLifetimeRequest, *, timeout: float | None = None
    ) -> api.ForkLifetimeResponse:
        check_payload(request.result, "result", limit=self.runtime.settings.offload_threshold)
        from_exec = require(request.from_exec_id, "from_exec_id")
        await self._check_execution(tenant, request.lifetime_id, from_exec, "from_exec_id")
        records = await self.store.events(request.lifetime_id)
        started = _event(records[0]).started
        self._check_served(started.graph, dict(started.labels))
        new_id = await fork_lifetime(
            self.runtime,
            request.lifetime_id,
            from_exec,
            result=request.result if request.HasField("result") else None,
            rerun_finished_branches=request.rerun_finished_branches,
        )
        if self.on_started is not None:
            self.on_started(new_id)
        # The fork's log starts with the original's history; what follows is its
        # own. Followers start after the copy, so a pause or a decision copied
        # from the original is not mistaken for the fork's.
        kept = history_length([_event(r) for r in records], from_exec) or 0
        copied = await self.store.events(new_id)
        history = copied[kept - 1].seq if 0 < kept <= len(copied) else 0
        return api.ForkLifetimeResponse(lifetime_id=new_id, history_seq=history)
