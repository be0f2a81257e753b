"""What each lifecycle RPC does, over a started Runtime; no gRPC here.

Every method takes the caller's tenant, already authenticated by the server,
and the request message. A lifetime or execution recorded for another tenant
raises PermissionDenied; one that does not exist raises LifetimeNotFoundError
(or NotFound for an execution). Commands (start, pause, resume, abort) are
published to the control plane like ``tickrail run`` does; reads go to the
store, so the API works in every profile, including an API process in front
of a cloud deployment that runs no role itself.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Collection
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from tickrail.adapters import EventRecord, LifetimeSummary, Message, StateStore
from tickrail.adapters.store.base import summarize
from tickrail.sdk._payload import read_bytes
from tickrail.sdk.errors import LifetimeNotFoundError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.sdk.pb import lifecycle_pb2 as api
from tickrail.services.control_plane.projection import rebuild
from tickrail.services.runtime import Runtime
from tickrail.services.usage import usage_rows

from ._paging import LifetimeQuery, list_page, page_size
from ._resume import resume_command
from ._validate import check_graph_spec, check_new_id, check_payload, require, same_structure
from .errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Unavailable,
    Unimplemented,
)

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


class LifecycleBackend:
    """The lifecycle API over ``runtime`` (entered; its adapters open).

    ``start_timeout`` bounds how long StartLifetime waits for the control plane
    to record a start; ``poll_interval`` is how often WatchLifetime reads the
    store for new events (the store is the one source every profile shares).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        start_timeout: float = 10.0,
        poll_interval: float = 0.05,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.runtime = runtime
        self.start_timeout = start_timeout
        self.poll_interval = poll_interval
        self.max_result_bytes = max_result_bytes

    @property
    def store(self) -> StateStore:
        return self.runtime.store

    # ---- ownership ------------------------------------------------------------

    async def _events(self, tenant: str, lifetime_id: str) -> list[EventRecord]:
        """The lifetime's events, after checking it exists and is the caller's."""
        records = await self.store.events(require(lifetime_id, "lifetime_id"))
        if not records:
            raise LifetimeNotFoundError(f"no lifetime {lifetime_id!r}")
        if records[0].tenant_id != tenant:
            raise PermissionDenied(f"lifetime {lifetime_id!r} is not tenant {tenant!r}'s")
        return records

    # ---- commands -------------------------------------------------------------

    async def _publish(self, command: pb.LifetimeCommand) -> None:
        # Straight to the commands topic rather than Runtime.send, which arms a
        # wait() future per lifetime that a long-running server never collects.
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
        self._check_served(request.graph)
        if settings.per_tenant_topics and tenant not in settings.tenants:
            raise FailedPrecondition(
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
        await self._publish(
            pb.LifetimeCommand(
                command_id=f"start-{lifetime_id}",
                lifetime_id=lifetime_id,
                tenant_id=tenant,
                start=begin,
            )
        )
        await self._until_recorded(lifetime_id, timeout)
        return api.StartLifetimeResponse(lifetime_id=lifetime_id)

    def _check_served(self, spec: pb.GraphSpec) -> None:
        """With executors in this process, refuse graphs they cannot run.

        An API process in front of a cloud deployment runs no executor and
        cannot know what the executors serve, so it lets any valid graph through.
        """
        if "executor" not in self.runtime.roles:
            return
        served = {g.graph_id: g for g in self.runtime.graphs}
        graph = served.get(spec.graph_id)
        if graph is None:
            names = ", ".join(sorted(served)) or "none"
            raise FailedPrecondition(
                f"this server does not serve graph {spec.graph_id!r} (it serves: {names})"
            )
        if graph.version != spec.version or not same_structure(graph.spec, spec):
            raise FailedPrecondition(
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
            raise AlreadyExists(f"lifetime {begin.lifetime_id!r} exists")
        return True

    async def _until_recorded(self, lifetime_id: str, timeout: float | None) -> None:
        """Wait for the control plane to record the start, so later calls find it."""
        budget = self.start_timeout if timeout is None else min(timeout, self.start_timeout)
        deadline = time.monotonic() + max(budget, 0.0)
        while not await self.store.events(lifetime_id):
            if time.monotonic() >= deadline:
                raise Unavailable(
                    f"the start of {lifetime_id} was sent but the control plane has not "
                    f"recorded it within {budget:.1f}s; retry with lifetime_id={lifetime_id} "
                    "(a repeated start is recorded once)"
                )
            await asyncio.sleep(min(self.poll_interval, 0.02))

    async def _command(
        self, tenant: str, lifetime_id: str, kind: str, allowed: Collection[int], **body: Any
    ) -> str:
        records = await self._events(tenant, lifetime_id)
        status = records[-1].status
        if status not in allowed:
            raise FailedPrecondition(
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
        reason = request.reason or "paused through the API"
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
            raise FailedPrecondition(f"lifetime {request.lifetime_id} is {status}, not PAUSED")
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
                raise NotFound(
                    f"exec_id: lifetime {request.lifetime_id!r} has no execution "
                    f"{request.exec_id!r}"
                )
        resume = resume_command(state, request)
        command_id = await self._command(
            tenant, request.lifetime_id, "resume", {pb.LIFETIME_STATUS_PAUSED}, resume=resume
        )
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
        reason = request.reason or "aborted through the API"
        command_id = await self._command(
            tenant, request.lifetime_id, "abort", allowed, abort=pb.LifetimeAborted(reason=reason)
        )
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
        """Events after ``after_seq`` as they are recorded (polling the store)."""
        records = await self._events(tenant, request.lifetime_id)
        after = request.after_seq
        while True:
            fresh = [r for r in records if r.seq > after]
            for record in fresh:
                after = record.seq
                yield _event(record)
                # By kind, not status: every event of one decision is stored with the
                # status after the whole decision, so the event before `completed` reads
                # COMPLETED too.
                if record.kind in TERMINAL_KINDS and not request.follow_forever:
                    return
            # Already ended before the requested seq: nothing more will come.
            ended = bool(records) and records[-1].status in TERMINAL
            if not fresh and ended and not request.follow_forever:
                return
            await asyncio.sleep(self.poll_interval)
            records = await self.store.events(request.lifetime_id, after_seq=after)

    async def execution(
        self, tenant: str, request: api.GetExecutionRequest
    ) -> api.GetExecutionResponse:
        exec_id = require(request.exec_id, "exec_id")
        record = await self.store.get_execution(exec_id)
        if record is None:
            raise NotFound(f"no execution {exec_id!r}")
        if record.tenant_id != tenant:
            raise PermissionDenied(f"execution {exec_id!r} is not tenant {tenant!r}'s")
        envelope = pb.ExecutionEnvelope.FromString(record.envelope)
        output = _execution_of(envelope).result.output
        if output.WhichOneof("body") == "blob" and output.blob.size > self.max_result_bytes:
            raise FailedPrecondition(
                f"the result is {output.blob.size:,} bytes, more than this API returns "
                f"({self.max_result_bytes:,}); it is stored at {output.blob.uri}"
            )
        data = await read_bytes(output, self.runtime.blobs)
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
            raise NotFound(f"{field}: lifetime {lifetime_id!r} has no execution {exec_id!r}")

    # ---- replay and fork (services.control_plane.replay / .fork) -------------

    async def replay(
        self, tenant: str, request: api.ReplayLifetimeRequest
    ) -> api.ReplayLifetimeResponse:
        await self._events(tenant, request.lifetime_id)
        replay_lifetime = _optional(
            "tickrail.services.control_plane.replay", "replay_lifetime", "replay"
        )
        report = await replay_lifetime(
            self.store,
            request.lifetime_id,
            graphs=self.runtime.graphs,
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
        fork_lifetime = _optional("tickrail.services.control_plane.fork", "fork_lifetime", "fork")
        new_id: str = await fork_lifetime(
            self.runtime,
            request.lifetime_id,
            from_exec,
            result=request.result if request.HasField("result") else None,
        )
        await self._until_recorded(new_id, timeout)
        return api.ForkLifetimeResponse(lifetime_id=new_id)


def _optional(module: str, name: str, what: str) -> Any:
    """``module.name``, or Unimplemented while that module is not part of this build.

    Only the module itself (or the name in it) missing counts; a module that
    fails to import for another reason is a server bug and surfaces as one.
    """
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise Unimplemented(f"{what} is not available on this server yet") from exc
    except AttributeError as exc:
        raise Unimplemented(f"{what} is not available on this server yet") from exc
