"""A Python client for the tickrail lifecycle API (``tickrail serve``).

::

    from tickrail.sdk.client import TickrailClient

    async with TickrailClient("localhost:50051", tenant="acme", token=token) as client:
        lifetime_id = await client.start(graph, {"question": "..."})
        async for event in client.watch(lifetime_id):
            print(event.WhichOneof("kind"))
        print(await client.usage(lifetime_id=lifetime_id, group_by="node"))

Every call acts for ``tenant`` and sends ``token`` as ``authorization: Bearer``.
Failures raise the SDK's errors (``tickrail.sdk.errors``): the server names the
class it raised, so a caller catches the same class whether the service runs
in this process or across the network; the gRPC error is chained as ``__cause__``.

The client speaks to the lifecycle service through a ``Transport`` (one method
per call shape, like httpx's transports): gRPC over TCP or a Unix socket
(``address`` is ``host:port`` or ``unix:/path``), or, given ``transport=``,
anything else with the same two methods, such as the in-process transport of
``tickrail.services.lifecycle``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import grpc
from google.protobuf.message import Message

from tickrail.sdk import errors as _errors
from tickrail.sdk._envelope import header_of, kind_of, telemetry_of
from tickrail.sdk._payload import decode_bytes, encode
from tickrail.sdk.errors import (
    AdapterError,
    AuthenticationError,
    BlobIntegrityError,
    ConfigurationError,
    InvalidArgumentError,
    LifetimeNotFoundError,
    PermissionDeniedError,
    TickrailError,
)
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.sdk.pb import lifecycle_pb2 as api

_ResponseT = TypeVar("_ResponseT", bound=Message)
_SERVICE = "/tickrail.v1.LifecycleService/"
#: The server sends up to 80 MiB (a large GetExecution result).
MAX_RECEIVE_BYTES = 80 * 1024 * 1024
STATUS = {v: k.removeprefix("LIFETIME_STATUS_") for k, v in pb.LifetimeStatus.items()}
GROUPINGS = {
    "tenant": api.USAGE_GROUPING_TENANT,
    "lifetime": api.USAGE_GROUPING_LIFETIME,
    "node": api.USAGE_GROUPING_NODE,
    "day": api.USAGE_GROUPING_DAY,
}
_KEEP: Any = object()  # ``fork(result=...)`` not given: keep the recorded result
#: Trailing metadata naming the SDK error class the server raised (and its field).
ERROR_KEY = "tickrail-error"
FIELD_KEY = "tickrail-error-field"


class Transport(Protocol):
    """How a client reaches a lifecycle service: one unary call, one stream."""

    async def unary(
        self, method: str, request: Message, response: type[_ResponseT], timeout: float | None
    ) -> _ResponseT: ...

    def stream(
        self, method: str, request: Message, response: type[_ResponseT]
    ) -> AsyncIterator[_ResponseT]: ...

    async def close(self) -> None: ...


# ---- results ------------------------------------------------------------------


def _when(stamp: Any) -> datetime:
    # Truncates to microseconds (never rounds up), so a time read here and sent
    # back as a started_after bound still includes the lifetime it came from.
    when: datetime = stamp.ToDatetime(tzinfo=UTC)
    return when


@dataclass(frozen=True, slots=True)
class LifetimeInfo:
    """One lifetime as listed."""

    lifetime_id: str
    tenant_id: str
    graph_id: str
    status: str  # RUNNING, PAUSED, COMPLETED, FAILED, ABORTED
    started_at: datetime
    updated_at: datetime
    events: int

    @classmethod
    def from_proto(cls, summary: api.LifetimeSummary) -> LifetimeInfo:
        return cls(
            lifetime_id=summary.lifetime_id,
            tenant_id=summary.tenant_id,
            graph_id=summary.graph_id,
            status=STATUS[summary.status],
            started_at=_when(summary.started_at),
            updated_at=_when(summary.updated_at),
            events=summary.event_count,
        )


@dataclass(frozen=True, slots=True)
class Execution:
    """A recorded execution: its store ``seq`` (ordered with event seqs) and envelope."""

    seq: int
    envelope: pb.ExecutionEnvelope

    @property
    def kind(self) -> str:
        """``task`` or ``plan``."""
        return kind_of(self.envelope)

    @property
    def header(self) -> pb.ExecutionHeader:
        return header_of(self.envelope)

    @property
    def telemetry(self) -> pb.PolicyTelemetry:
        return telemetry_of(self.envelope)


@dataclass(frozen=True, slots=True)
class LifetimeDetail:
    """A lifetime with every execution and event, in recorded order."""

    info: LifetimeInfo
    executions: list[Execution]
    events: list[pb.LifetimeEvent]  # event.seq set


@dataclass(frozen=True, slots=True)
class LifetimePage:
    lifetimes: list[LifetimeInfo]
    next_page_token: str  # "" on the last page


@dataclass(frozen=True, slots=True)
class Divergence:
    seq: int
    event_id: str
    expected: str
    got: str


@dataclass(frozen=True, slots=True)
class PlanDifference:
    exec_id: str
    name: str
    expected: str
    got: str


@dataclass(frozen=True, slots=True)
class ReplayResult:
    ok: bool
    checked: int
    divergence: Divergence | None
    plan_differences: list[PlanDifference]


@dataclass(frozen=True, slots=True)
class Forked:
    """A new fork: its id, and the seq its own events come after (the copied history)."""

    lifetime_id: str
    history_seq: int


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    executions: int


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """An execution, its result bytes, and those bytes decoded."""

    execution: Execution
    data: bytes
    content_type: str
    value: Any  # JSON data, str for text/*, else bytes; None when there is no result


# ---- errors -------------------------------------------------------------------


def _named_error(exc: Any, details: str) -> TickrailError | None:
    """The SDK error the server named in its trailing metadata, if it named one."""
    try:
        trailing = dict(exc.trailing_metadata() or ())
    except Exception:
        return None
    name = trailing.get(ERROR_KEY)
    cls = getattr(_errors, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, TickrailError)):
        return None
    field = trailing.get(FIELD_KEY)
    if issubclass(cls, InvalidArgumentError):
        prefix = f"{field}: "
        problem = details[len(prefix) :] if details.startswith(prefix) else details
        return cls(str(field or "request"), problem)
    try:
        return cls(details)
    except TypeError:  # a class whose constructor needs more than a message
        return None


def error_for(exc: Any) -> TickrailError:
    """The SDK error for a ``grpc.aio.AioRpcError``."""
    code = exc.code()
    details = exc.details() or code.name
    named = _named_error(exc, details)
    if named is not None:
        return named
    message = f"{details} ({code.name})"
    S = grpc.StatusCode
    if code == S.NOT_FOUND:
        return LifetimeNotFoundError(message)
    if code == S.UNAUTHENTICATED:
        return AuthenticationError(message)
    if code == S.PERMISSION_DENIED:
        return PermissionDeniedError(message)
    if code == S.DATA_LOSS:
        return BlobIntegrityError(message)
    if code in (S.UNAVAILABLE, S.DEADLINE_EXCEEDED, S.CANCELLED, S.RESOURCE_EXHAUSTED):
        return AdapterError(message, retriable=True)
    if code in (
        S.INVALID_ARGUMENT,
        S.FAILED_PRECONDITION,
        S.ALREADY_EXISTS,
        S.UNIMPLEMENTED,
        S.OUT_OF_RANGE,
    ):
        return ConfigurationError(message)
    return AdapterError(message, retriable=False)


# ---- the client -----------------------------------------------------------------


class GrpcTransport:
    """The lifecycle service over a gRPC channel (``host:port`` or ``unix:/path``).

    At most ``max_concurrency`` unary calls run at once on the channel: past a
    few hundred simultaneous calls gRPC starts cancelling some of them.
    """

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        secure: bool = False,
        credentials: Any = None,
        max_concurrency: int = 100,
    ) -> None:
        self.address = address
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        options = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
        if secure or credentials is not None:
            creds = credentials or grpc.ssl_channel_credentials()
            self._channel = grpc.aio.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        self._slots = asyncio.Semaphore(max_concurrency)

    def _method(self, name: str, response: type[Message], *, stream: bool = False) -> Any:
        factory = self._channel.unary_stream if stream else self._channel.unary_unary
        return factory(
            _SERVICE + name,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response.FromString,
        )

    async def unary(
        self, method: str, request: Message, response: type[_ResponseT], timeout: float | None
    ) -> _ResponseT:
        call = self._method(method, response)
        async with self._slots:
            try:
                result: _ResponseT = await call(request, metadata=self._metadata, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                raise error_for(exc) from exc
        return result

    async def stream(
        self, method: str, request: Message, response: type[_ResponseT]
    ) -> AsyncIterator[_ResponseT]:
        call = self._method(method, response, stream=True)(request, metadata=self._metadata)
        try:
            async for reply in call:
                yield reply
        except grpc.aio.AioRpcError as exc:
            raise error_for(exc) from exc
        finally:
            call.cancel()  # the consumer stopped early: end the stream on the server too

    async def close(self) -> None:
        await self._channel.close()


class TickrailClient:
    """Async client for one tenant of a tickrail lifecycle service.

    ``address`` is ``host:port`` (or ``unix:/path``). ``secure`` uses TLS with the
    system's root certificates (or pass ``credentials=grpc.ssl_channel_credentials(...)``).
    ``transport`` replaces the gRPC channel altogether (``address`` is then only
    a label, e.g. ``"in-process"``).
    """

    def __init__(
        self,
        address: str = "",
        *,
        tenant: str,
        token: str | None = None,
        secure: bool = False,
        credentials: Any = None,
        max_concurrency: int = 100,
        timeout: float | None = 30.0,
        transport: Transport | None = None,
    ) -> None:
        if not tenant:
            raise ConfigurationError("TickrailClient needs a tenant")
        if transport is None and not address:
            raise ConfigurationError("TickrailClient needs an address or a transport")
        self.address = address
        self.tenant = tenant
        self.timeout = timeout
        self._transport: Transport = transport or GrpcTransport(
            address,
            token=token,
            secure=secure,
            credentials=credentials,
            max_concurrency=max_concurrency,
        )
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the transport (idempotent); running calls are cancelled."""
        if not self._closed:
            self._closed = True
            await self._transport.close()

    # ---- plumbing -------------------------------------------------------------

    async def _call(self, name: str, request: Message, response: type[_ResponseT]) -> _ResponseT:
        if self._closed:
            raise ConfigurationError("the client is closed")
        return await self._transport.unary(name, request, response, self.timeout)

    # ---- lifetimes --------------------------------------------------------------

    async def start(
        self,
        graph: AgentGraph | pb.GraphSpec,
        input: Any = None,
        *,
        labels: Mapping[str, str] | None = None,
        lifetime_id: str | None = None,
    ) -> str:
        """Start a lifetime of ``graph``; returns its id once the start is recorded.

        The id is chosen here unless given, so retrying after an UNAVAILABLE
        answer with the same ``lifetime_id`` never starts the lifetime twice.
        """
        spec = graph.spec if isinstance(graph, AgentGraph) else graph
        request = api.StartLifetimeRequest(
            tenant_id=self.tenant,
            graph=spec,
            input=encode(input),
            labels=dict(labels or {}),
            lifetime_id=lifetime_id or uuid.uuid4().hex[:20],
        )
        reply = await self._call("StartLifetime", request, api.StartLifetimeResponse)
        return reply.lifetime_id

    async def get(self, lifetime_id: str) -> LifetimeDetail:
        request = api.GetLifetimeRequest(tenant_id=self.tenant, lifetime_id=lifetime_id)
        reply = await self._call("GetLifetime", request, api.GetLifetimeResponse)
        return LifetimeDetail(
            info=LifetimeInfo.from_proto(reply.summary),
            executions=[Execution(e.seq, e.envelope) for e in reply.executions],
            events=list(reply.events),
        )

    async def list(
        self,
        *,
        graph_id: str = "",
        status: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        page_size: int = 50,
        page_token: str = "",
    ) -> LifetimePage:
        """One page of the tenant's lifetimes, newest first (see ``iter_lifetimes``)."""
        wanted = (status or "UNSPECIFIED").upper()
        if wanted not in STATUS.values():
            raise ConfigurationError(f"unknown lifetime status {status!r}")
        request = api.ListLifetimesRequest(
            tenant_id=self.tenant,
            graph_id=graph_id,
            status=f"LIFETIME_STATUS_{wanted}",
            page_size=page_size,
            page_token=page_token,
        )
        if started_after is not None:
            request.started_after.FromDatetime(started_after)
        if started_before is not None:
            request.started_before.FromDatetime(started_before)
        reply = await self._call("ListLifetimes", request, api.ListLifetimesResponse)
        return LifetimePage(
            [LifetimeInfo.from_proto(s) for s in reply.lifetimes], reply.next_page_token
        )

    async def iter_lifetimes(self, **filters: Any) -> AsyncIterator[LifetimeInfo]:
        """Every lifetime matching ``filters`` (the arguments of ``list``), page by page."""
        token = ""
        while True:
            page = await self.list(**filters, page_token=token)
            for info in page.lifetimes:
                yield info
            token = page.next_page_token
            if not token:
                return

    async def watch(
        self, lifetime_id: str, *, after_seq: int = 0, follow_forever: bool = False
    ) -> AsyncIterator[pb.LifetimeEvent]:
        """The lifetime's events as they are recorded (``event.seq`` set), and the
        ``output`` events running Tasks stream (``ctx.emit``; live only, seq 0).

        Ends after the event that completes, fails or aborts the lifetime,
        unless ``follow_forever``. To resume a broken stream, pass the last
        seq seen as ``after_seq``. Not bounded by the client's ``timeout``.
        """
        if self._closed:
            raise ConfigurationError("the client is closed")
        request = api.WatchLifetimeRequest(
            tenant_id=self.tenant,
            lifetime_id=lifetime_id,
            after_seq=after_seq,
            follow_forever=follow_forever,
        )
        stream = self._transport.stream("WatchLifetime", request, api.WatchLifetimeResponse)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for reply in stream:
                yield reply.event

    async def pause(self, lifetime_id: str, *, reason: str = "") -> str:
        """Ask for a pause; returns the command id (the ``paused`` event follows)."""
        request = api.PauseLifetimeRequest(
            tenant_id=self.tenant, lifetime_id=lifetime_id, reason=reason
        )
        reply = await self._call("PauseLifetime", request, api.PauseLifetimeResponse)
        return reply.command_id

    async def resume(
        self,
        lifetime_id: str,
        *,
        input: Any = None,
        exec_id: str | None = None,
        reason: str = "",
    ) -> str:
        """Continue a PAUSED lifetime, with optional human ``input`` for ``exec_id``."""
        request = api.ResumeLifetimeRequest(
            tenant_id=self.tenant, lifetime_id=lifetime_id, exec_id=exec_id or "", reason=reason
        )
        if input is not None:
            request.input.CopyFrom(encode(input))
        reply = await self._call("ResumeLifetime", request, api.ResumeLifetimeResponse)
        return reply.command_id

    async def abort(self, lifetime_id: str, *, reason: str = "") -> str:
        request = api.AbortLifetimeRequest(
            tenant_id=self.tenant, lifetime_id=lifetime_id, reason=reason
        )
        reply = await self._call("AbortLifetime", request, api.AbortLifetimeResponse)
        return reply.command_id

    async def replay(self, lifetime_id: str, *, rerun_plans: bool = False) -> ReplayResult:
        """Check every recorded decision of the lifetime against a fresh derivation."""
        request = api.ReplayLifetimeRequest(
            tenant_id=self.tenant, lifetime_id=lifetime_id, rerun_plans=rerun_plans
        )
        reply = await self._call("ReplayLifetime", request, api.ReplayLifetimeResponse)
        d = reply.divergence
        return ReplayResult(
            ok=reply.ok,
            checked=reply.checked,
            divergence=Divergence(d.seq, d.event_id, d.expected, d.got)
            if reply.HasField("divergence")
            else None,
            plan_differences=[
                PlanDifference(p.exec_id, p.name, p.expected, p.got) for p in reply.plan_differences
            ],
        )

    async def fork(self, lifetime_id: str, from_exec_id: str, *, result: Any = _KEEP) -> str:
        """A new lifetime continuing from ``from_exec_id``; returns its id.

        ``result`` replaces that execution's recorded result (any value the
        node could have returned, ``None`` included); omit it to keep the record.
        """
        return (await self.fork_lifetime(lifetime_id, from_exec_id, result=result)).lifetime_id

    async def fork_lifetime(
        self,
        lifetime_id: str,
        from_exec_id: str,
        *,
        result: Any = _KEEP,
        rerun_finished_branches: bool = False,
    ) -> Forked:
        """``fork``, also telling the seq its own events come after (see ``Forked``).

        Parallel branches that had finished before ``from_exec_id`` keep their
        recorded results unless ``rerun_finished_branches``.
        """
        request = api.ForkLifetimeRequest(
            tenant_id=self.tenant,
            lifetime_id=lifetime_id,
            from_exec_id=from_exec_id,
            rerun_finished_branches=rerun_finished_branches,
        )
        if result is not _KEEP:
            request.result.CopyFrom(encode(result))
        reply = await self._call("ForkLifetime", request, api.ForkLifetimeResponse)
        return Forked(reply.lifetime_id, reply.history_seq)

    async def usage(
        self, *, lifetime_id: str | None = None, group_by: str = "tenant"
    ) -> builtins.list[UsageRow]:
        """Tokens, cost and executions, grouped by ``tenant``, ``lifetime``, ``node`` or ``day``."""
        if group_by not in GROUPINGS:
            raise ConfigurationError(f"group_by must be one of {', '.join(GROUPINGS)}")
        request = api.GetUsageRequest(
            tenant_id=self.tenant, lifetime_id=lifetime_id or "", group_by=GROUPINGS[group_by]
        )
        reply = await self._call("GetUsage", request, api.GetUsageResponse)
        return [
            UsageRow(r.key, r.tokens_in, r.tokens_out, r.cost_usd, r.executions) for r in reply.rows
        ]

    async def execution(self, exec_id: str) -> ExecutionResult:
        """One execution and its result (fetched from the blob store if it was offloaded)."""
        request = api.GetExecutionRequest(tenant_id=self.tenant, exec_id=exec_id)
        reply = await self._call("GetExecution", request, api.GetExecutionResponse)
        value = decode_bytes(reply.content_type, reply.result) if reply.content_type else None
        execution = Execution(reply.execution.seq, reply.execution.envelope)
        return ExecutionResult(execution, reply.result, reply.content_type, value)


__all__ = [
    "AuthenticationError",
    "Divergence",
    "Execution",
    "ExecutionResult",
    "Forked",
    "GrpcTransport",
    "LifetimeDetail",
    "LifetimeInfo",
    "LifetimePage",
    "PermissionDeniedError",
    "PlanDifference",
    "ReplayResult",
    "TickrailClient",
    "Transport",
    "UsageRow",
    "error_for",
]
