"""The JSON API (``/api``): every endpoint acts for the caller's tenant through its client."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tickrail.sdk.errors import ConfigurationError

from . import present
from .auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    TENANT_COOKIE,
    Caller,
    ConsoleAuth,
    Forbidden,
)
from .client import LifecycleClient
from .models import (
    TENANT_PATTERN,
    AnswerIn,
    CommandOut,
    DivergenceOut,
    ExecutionDetailOut,
    ForkIn,
    ForkOut,
    LifetimeDetailOut,
    LifetimeListOut,
    PlanDifferenceOut,
    Problem,
    ReasonIn,
    ReplayIn,
    ReplayOut,
    ResultOut,
    SessionOut,
    SignInIn,
    UsageOut,
    UsageRowOut,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a body that is not JSON, or a field refused"},
    401: {"model": Problem, "description": "no or unknown credentials"},
    403: {"model": Problem, "description": "another tenant, or a missing CSRF token"},
    404: {"model": Problem, "description": "no such lifetime or execution for this tenant"},
    409: {"model": Problem, "description": "not possible in the lifetime's current state"},
}
router = APIRouter(prefix="/api", responses=ERRORS)
Status = Literal["RUNNING", "PAUSED", "COMPLETED", "FAILED", "ABORTED"]
Grouping = Literal["tenant", "graph", "node", "day", "lifetime"]
TenantQuery = Annotated[
    str | None, Query(pattern=TENANT_PATTERN, description="insecure mode: which tenant to act for")
]
Id = Annotated[str, "a lifetime or execution id"]


# ---- who is asking -----------------------------------------------------------------


def caller_of(request: Request, tenant: str | None = None) -> Caller:
    """The request's caller; ``tenant`` (a query parameter) must be its own unless insecure."""
    auth: ConsoleAuth = request.app.state.auth
    remembered = request.cookies.get(TENANT_COOKIE) or ""
    chosen = tenant or (remembered if re.match(TENANT_PATTERN, remembered) else None)
    who = auth.caller(
        authorization=request.headers.get("authorization"),
        session_id=request.cookies.get(SESSION_COOKIE),
        csrf_cookie=request.cookies.get(CSRF_COOKIE),
        chosen_tenant=chosen if auth.insecure else None,
    )
    if tenant and tenant != who.tenant:
        raise Forbidden(f"these credentials do not grant access to tenant {tenant!r}")
    return who


def client_of(request: Request, tenant: str | None = None) -> LifecycleClient:
    """The lifecycle client for the caller's tenant (call it on the event loop)."""
    who = caller_of(request, tenant)
    client: LifecycleClient = request.app.state.client_for(who.tenant)
    return client


# Dependencies are async so FastAPI runs them on the event loop, where the
# clients (grpc.aio channels) live, rather than in a worker thread.
async def reader(request: Request, tenant: TenantQuery = None) -> LifecycleClient:
    return client_of(request, tenant)


async def writer(request: Request, tenant: TenantQuery = None) -> LifecycleClient:
    """A client for a state-changing request, after the CSRF check."""
    who = caller_of(request, tenant)
    ConsoleAuth.check_csrf(
        who,
        request.headers.get(CSRF_HEADER),
        request.headers.get("origin"),
        request.headers.get("host", ""),
    )
    client: LifecycleClient = request.app.state.client_for(who.tenant)
    return client


Reader = Annotated[LifecycleClient, Depends(reader)]
Writer = Annotated[LifecycleClient, Depends(writer)]


# ---- session -----------------------------------------------------------------------


@router.post("/session", response_model=SessionOut, summary="Sign in with a tenant token")
async def sign_in(body: SignInIn, request: Request) -> JSONResponse:
    auth: ConsoleAuth = request.app.state.auth
    if auth.insecure:
        tenant = body.tenant or auth.default_tenant
        csrf = request.cookies.get(CSRF_COOKIE) or ""
        response = JSONResponse(
            SessionOut(tenant_id=tenant, insecure=True, csrf_token=csrf).model_dump()
        )
        response.set_cookie(TENANT_COOKIE, tenant, samesite="strict", httponly=True)
        return response
    session_id, session = auth.sign_in(body.token)
    response = JSONResponse(
        SessionOut(tenant_id=session.tenant, insecure=False, csrf_token=session.csrf).model_dump()
    )
    secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE, session_id, httponly=True, samesite="strict", secure=secure, path="/"
    )
    response.set_cookie(CSRF_COOKIE, session.csrf, httponly=False, samesite="strict", secure=secure)
    return response


@router.get("/session", response_model=SessionOut, summary="Who this session is")
async def whoami(request: Request) -> SessionOut:
    who = caller_of(request)
    auth: ConsoleAuth = request.app.state.auth
    return SessionOut(tenant_id=who.tenant, insecure=auth.insecure, csrf_token=who.csrf)


@router.delete("/session", status_code=204, summary="Sign out")
async def sign_out(request: Request) -> Response:
    auth: ConsoleAuth = request.app.state.auth
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id and auth.session(session_id) is not None:
        # A cross-site page must not be able to sign a person out either.
        await writer(request)
        auth.sign_out(session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(TENANT_COOKIE)
    return response


# ---- reads ---------------------------------------------------------------------------


async def list_lifetimes(
    client: LifecycleClient,
    *,
    graph_id: str = "",
    status: str | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    page_size: int = 50,
    page_token: str = "",
) -> LifetimeListOut:
    page = await client.list(
        graph_id=graph_id,
        status=status,
        started_after=started_after,
        started_before=started_before,
        page_size=page_size,
        page_token=page_token,
    )
    # Usage of the lifetimes on this page only: bounded by the page size, where
    # the tenant-wide grouping would read every execution the tenant ever had.
    rows = await asyncio.gather(
        *(client.usage(lifetime_id=i.lifetime_id, group_by="lifetime") for i in page.lifetimes)
    )
    usage = {r[0].key: r[0] for r in rows if r}
    return LifetimeListOut(
        lifetimes=[present.lifetime(i, usage.get(i.lifetime_id)) for i in page.lifetimes],
        next_page_token=page.next_page_token,
    )


@router.get(
    "/lifetimes", response_model=LifetimeListOut, summary="The tenant's lifetimes, newest first"
)
async def lifetimes(
    client: Reader,
    graph_id: Annotated[str, Query(max_length=200)] = "",
    status: Status | None = None,
    started_after: Annotated[datetime | None, Query(description="inclusive")] = None,
    started_before: Annotated[datetime | None, Query(description="exclusive")] = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: Annotated[str, Query(max_length=2000)] = "",
) -> LifetimeListOut:
    return await list_lifetimes(
        client,
        graph_id=graph_id,
        status=status,
        started_after=started_after,
        started_before=started_before,
        page_size=page_size,
        page_token=page_token,
    )


async def lifetime_detail(client: LifecycleClient, lifetime_id: str) -> LifetimeDetailOut:
    d = await client.get(lifetime_id)
    rows = await client.usage(lifetime_id=lifetime_id, group_by="lifetime")
    return present.detail(d, rows[0] if rows else None)


@router.get(
    "/lifetimes/{lifetime_id}",
    response_model=LifetimeDetailOut,
    summary="One lifetime: executions, events, graph spec, totals",
)
async def lifetime(lifetime_id: Id, client: Reader) -> LifetimeDetailOut:
    return await lifetime_detail(client, lifetime_id)


@router.get(
    "/lifetimes/{lifetime_id}/events",
    summary="The lifetime's events as they are recorded (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "one event per message"}},
)
async def events(
    lifetime_id: Id,
    client: Reader,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
) -> StreamingResponse:
    await client.get(lifetime_id)  # 404 now, rather than a stream that breaks
    if last_event_id and last_event_id.isdigit():  # EventSource reconnecting
        after_seq = max(after_seq, int(last_event_id))

    async def stream() -> AsyncIterator[bytes]:
        # A long retry: after the lifetime ends the page closes the source itself.
        yield b"retry: 10000\n\n"
        async for event in client.watch(lifetime_id, after_seq=after_seq):
            out = present.event(event)
            data = json.dumps(out.model_dump(mode="json"))
            yield f"id: {event.seq}\nevent: {out.kind}\ndata: {data}\n\n".encode()
        yield b"event: end\ndata: {}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"cache-control": "no-store"}
    )


async def execution_detail(client: LifecycleClient, exec_id: str) -> ExecutionDetailOut:
    found = await client.execution(exec_id)
    header = found.execution.header
    lifetime = await client.get(header.lifetime_id)
    node_input = present.inputs_by_id(lifetime.events).get(header.input_id)
    attempts = [
        present.execution(e) for e in lifetime.executions if e.header.input_id == header.input_id
    ]
    result = None
    if found.content_type:
        small = len(found.data) <= present.SHOW_LIMIT
        result = ResultOut(
            content_type=found.content_type,
            size=len(found.data),
            value=present.decode(found.content_type, found.data) if small else None,
            truncated=not small,
            download_url=f"/api/executions/{exec_id}/result",
        )
    return ExecutionDetailOut(
        execution=present.execution(found.execution),
        lifetime_id=header.lifetime_id,
        input=present.payload(node_input.input) if node_input is not None else None,
        result=result,
        attempts=attempts,
    )


@router.get(
    "/executions/{exec_id}",
    response_model=ExecutionDetailOut,
    summary="One execution: input, result, telemetry, attempts",
)
async def execution(exec_id: Id, client: Reader) -> ExecutionDetailOut:
    return await execution_detail(client, exec_id)


@router.get(
    "/executions/{exec_id}/result",
    summary="The execution's result bytes (offloaded blobs are fetched)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the bytes"}},
)
async def execution_result(exec_id: Id, client: Reader) -> Response:
    found = await client.execution(exec_id)
    if not found.content_type:
        raise ConfigurationError(f"execution {exec_id} has no result")
    suffix = {"application/json": "json", "text/plain": "txt"}.get(found.content_type, "bin")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in exec_id)[:100]
    return Response(
        found.data,
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{safe}.{suffix}"',
            "x-result-content-type": found.content_type,
        },
    )


async def usage_rows(
    client: LifecycleClient, group_by: str, lifetime_id: str | None = None
) -> list[UsageRowOut]:
    # "graph" is not a grouping of the lifecycle API: it sums the per-node rows,
    # whose keys are "graph_id/node".
    rows = await client.usage(
        lifetime_id=lifetime_id or None, group_by="node" if group_by == "graph" else group_by
    )
    sums: dict[str, list[float]] = {}
    for row in rows:
        key = row.key.split("/", 1)[0] if group_by == "graph" else row.key
        acc = sums.setdefault(key, [0, 0, 0.0, 0])
        acc[0] += row.tokens_in
        acc[1] += row.tokens_out
        acc[2] += row.cost_usd
        acc[3] += row.executions
    return [
        UsageRowOut(
            key=key,
            tokens_in=int(t_in),
            tokens_out=int(t_out),
            tokens=int(t_in + t_out),
            cost_usd=cost,
            executions=int(count),
        )
        for key, (t_in, t_out, cost, count) in sorted(sums.items())
    ]


@router.get("/usage", response_model=UsageOut, summary="Tokens, dollars and executions")
async def usage(
    client: Reader,
    group_by: Grouping = "tenant",
    lifetime_id: Annotated[str, Query(max_length=200)] = "",
) -> UsageOut:
    rows = await usage_rows(client, group_by, lifetime_id)
    return UsageOut(group_by=group_by, tenant_id=client.tenant, rows=rows)


# ---- actions -------------------------------------------------------------------------


@router.post("/lifetimes/{lifetime_id}/pause", response_model=CommandOut, summary="Pause")
async def pause(lifetime_id: Id, body: ReasonIn, client: Writer) -> CommandOut:
    reason = body.reason or "paused from the console"
    return CommandOut(command_id=await client.pause(lifetime_id, reason=reason))


@router.post("/lifetimes/{lifetime_id}/resume", response_model=CommandOut, summary="Resume")
async def resume(lifetime_id: Id, body: ReasonIn, client: Writer) -> CommandOut:
    reason = body.reason or "resumed from the console"
    return CommandOut(command_id=await client.resume(lifetime_id, reason=reason))


@router.post("/lifetimes/{lifetime_id}/abort", response_model=CommandOut, summary="Abort")
async def abort(lifetime_id: Id, body: ReasonIn, client: Writer) -> CommandOut:
    reason = body.reason or "aborted from the console"
    return CommandOut(command_id=await client.abort(lifetime_id, reason=reason))


@router.post(
    "/lifetimes/{lifetime_id}/answer",
    response_model=CommandOut,
    summary="Answer a question a Task asked a person (ctx.ask_human)",
)
async def answer(lifetime_id: Id, body: AnswerIn, client: Writer) -> CommandOut:
    if body.input is None:
        raise ConfigurationError("an answer needs a value (any JSON value but null)")
    command_id = await client.resume(
        lifetime_id,
        input=body.input,
        exec_id=body.exec_id or None,
        reason="answered from the console",
    )
    return CommandOut(command_id=command_id)


@router.post(
    "/lifetimes/{lifetime_id}/fork",
    response_model=ForkOut,
    summary="A new lifetime continuing from one execution, optionally with an edited result",
)
async def fork(lifetime_id: Id, body: ForkIn, client: Writer) -> ForkOut:
    if "result" in body.model_fields_set:
        new_id = await client.fork(lifetime_id, body.from_exec_id, result=body.result)
    else:
        new_id = await client.fork(lifetime_id, body.from_exec_id)
    return ForkOut(lifetime_id=new_id)


@router.post(
    "/lifetimes/{lifetime_id}/replay",
    response_model=ReplayOut,
    summary="Re-derive every decision from the log: OK or the first divergence",
)
async def replay(lifetime_id: Id, body: ReplayIn, client: Writer) -> ReplayOut:
    report = await client.replay(lifetime_id, rerun_plans=body.rerun_plans)
    d = report.divergence
    return ReplayOut(
        ok=report.ok,
        checked=report.checked,
        divergence=None
        if d is None
        else DivergenceOut(seq=d.seq, event_id=d.event_id, expected=d.expected, got=d.got),
        plan_differences=[
            PlanDifferenceOut(exec_id=p.exec_id, name=p.name, expected=p.expected, got=p.got)
            for p in report.plan_differences
        ],
    )


__all__ = ["router"]
