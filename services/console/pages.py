"""Server-rendered pages (Jinja2); ``static/console.js`` adds live updates and actions.

Each page reads through the same functions as the JSON API (``api.py``), so
a page never shows anything the API would not give the same caller.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from . import api, charts, graph_svg, present, timeline
from .auth import ConsoleAuth, NotSignedIn
from .client import LifecycleClient
from .models import TENANT_PATTERN, EventOut, LifetimeDetailOut

router = APIRouter(include_in_schema=False)
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


TEMPLATES.filters.update(pretty=_pretty, when=_when, duration=_duration)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    auth: ConsoleAuth = request.app.state.auth
    context.setdefault("tenant", None)
    html = TEMPLATES.get_template(name).render(request=request, insecure=auth.insecure, **context)
    return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store"})


def error_page(request: Request, code: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status_code=code, code=code, message=message)


def _client(request: Request, tenant: str | None) -> LifecycleClient:
    return api.client_of(request, tenant)


Tenant = Annotated[str | None, Query(pattern=TENANT_PATTERN)]


@router.get("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    return render(request, "signin.html")


@router.get("/", response_class=HTMLResponse)
async def lifetimes(
    request: Request,
    tenant: Tenant = None,
    graph_id: Annotated[str, Query(max_length=200)] = "",
    status: api.Status | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    page_token: Annotated[str, Query(max_length=2000)] = "",
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    client = _client(request, tenant)
    page = await api.list_lifetimes(
        client,
        graph_id=graph_id,
        status=status,
        started_after=started_after,
        started_before=started_before,
        page_size=page_size,
        page_token=page_token,
    )
    filters = {
        k: v
        for k, v in {
            "graph_id": graph_id,
            "status": status or "",
            "started_after": started_after.isoformat() if started_after else "",
            "started_before": started_before.isoformat() if started_before else "",
        }.items()
        if v
    }
    next_url = (
        "/?" + urlencode({**filters, "page_token": page.next_page_token})
        if page.next_page_token
        else ""
    )
    return render(
        request,
        "list.html",
        tenant=client.tenant,
        page=page,
        filters=filters,
        next_url=next_url,
        statuses=["RUNNING", "PAUSED", "COMPLETED", "FAILED", "ABORTED"],
        api_query=urlencode(filters),
    )


def decision(ev: EventOut, names: dict[str, str]) -> str:
    """One line per recorded decision, in words."""
    b = ev.body
    if ev.kind == "started":
        origin = (
            f" (fork of {b['forked_from_lifetime']} at {b.get('forked_from_exec', '')})"
            if b.get("forked_from_lifetime")
            else ""
        )
        return f"started{origin}"
    if ev.kind == "routed":
        name = b.get("name", names.get(b.get("exec_id", ""), ""))
        status = str(b.get("status", "")).removeprefix("EXECUTION_STATUS_").lower()
        nxt = [d.get("name", "") for d in b.get("dispatched", [])]
        text = f"{name} {status}"
        if nxt:
            edge = str(b.get("edge", "")).removeprefix("EDGE_KIND_").lower()
            text += f" → {', '.join(nxt)}" + (f" ({edge})" if edge else "")
        if b.get("deferred"):
            text += " — held while paused"
        if b.get("note"):
            text += f" — {b['note']}"
        return text
    if ev.kind == "guardrail":
        seen = ", ".join(f"{k}={v:g}" for k, v in (b.get("observed") or {}).items())
        return (
            f"guardrail {b.get('rule', '')}: {b.get('action', '')} on "
            f"{names.get(b.get('exec_id', ''), b.get('exec_id', ''))}"
            + (f" — {b['message']}" if b.get("message") else "")
            + (f" (saw {seen})" if seen else "")
            + (f" [policy {b['policy_version']}]" if b.get("policy_version") else "")
        )
    if ev.kind == "resumed" and b.get("human_input"):
        return f"answered {names.get(b.get('exec_id', ''), '')}: {b.get('reason', '')}".strip()
    reason = b.get("reason", "")
    return f"{ev.kind}" + (f": {reason}" if reason else "")


def _pictures(d: LifetimeDetailOut) -> tuple[Markup, Markup]:
    # The timeline runs up to now while work runs or a person is still asked;
    # a lifetime held by a pause ends at its last record.
    running_lifetime = d.lifetime.status == "RUNNING" or bool(d.waiting)
    recorded = {e.input_id for e in d.executions if e.status != "RETRYING"}
    dispatched = {
        str(i.get("input_id", "")): str(i.get("name", ""))
        for ev in d.events
        if ev.kind == "routed"
        for i in ev.body.get("dispatched", [])
    }
    # The answer to a question is the node's next run on the same branch (the
    # re-dispatch with the answer is made by the resume command, not a routing).
    answered_by: dict[str, str] = {}
    for i, asked in enumerate(d.executions):
        if asked.status == "WAITING":
            answer = next(
                (
                    e
                    for e in d.executions[i + 1 :]
                    if e.name == asked.name and e.branch == asked.branch
                ),
                None,
            )
            if answer is not None:
                answered_by[asked.exec_id] = answer.exec_id
    running = (
        {name for iid, name in dispatched.items() if iid not in recorded}
        if d.lifetime.status == "RUNNING"
        else set()
    )
    states = graph_svg.node_states(d.graph, d.executions, running, {w.exec_id for w in d.waiting})
    graph = graph_svg.render(d.graph, states, graph_svg.edges_taken(d.events, d.executions))
    line = timeline.render(
        d.executions,
        d.events,
        answered_by=answered_by,
        dispatched_by={k: v[0] for k, v in graph_svg.dispatchers(d.events).items()},
        now=datetime.now(UTC),
        running=running_lifetime,
    )
    return Markup(graph), Markup(line)


def held(d: LifetimeDetailOut) -> bool:
    """Paused by a command or a guardrail (a plain resume lifts it), not only by
    questions waiting for a person (those pause events name the asking execution)."""
    asking = {e.exec_id for e in d.executions if e.status == "WAITING"}
    for ev in reversed(d.events):
        if ev.kind == "resumed":
            return False
        if ev.kind == "paused" and ev.body.get("exec_id", "") not in asking:
            return True
    return False


async def _lifetime_context(client: LifecycleClient, lifetime_id: str) -> dict[str, Any]:
    d = await api.lifetime_detail(client, lifetime_id)
    names = {e.exec_id: e.name for e in d.executions}
    graph, line = _pictures(d)
    return {
        "d": d,
        "tenant": client.tenant,
        "graph_svg": graph,
        "timeline_svg": line,
        "decisions": [(ev, decision(ev, names)) for ev in d.events],
        "can_pause": d.lifetime.status == "RUNNING",
        "can_resume": d.lifetime.status == "PAUSED" and held(d),
        "can_abort": d.lifetime.status in ("RUNNING", "PAUSED"),
        "terminal": d.lifetime.status in present.TERMINAL,
        "last_seq": max((ev.seq for ev in d.events), default=0),
    }


@router.get("/lifetimes/{lifetime_id}", response_class=HTMLResponse)
async def lifetime(request: Request, lifetime_id: str, tenant: Tenant = None) -> Response:
    context = await _lifetime_context(_client(request, tenant), lifetime_id)
    return render(request, "lifetime.html", **context)


@router.get("/lifetimes/{lifetime_id}/live", response_class=HTMLResponse)
async def lifetime_live(request: Request, lifetime_id: str, tenant: Tenant = None) -> Response:
    """The parts of the lifetime page that change, for the page's script to swap in."""
    context = await _lifetime_context(_client(request, tenant), lifetime_id)
    return render(request, "_lifetime_live.html", **context)


@router.get("/executions/{exec_id}", response_class=HTMLResponse)
async def execution(request: Request, exec_id: str, tenant: Tenant = None) -> Response:
    client = _client(request, tenant)
    x = await api.execution_detail(client, exec_id)
    editable = ""
    if x.result is not None and not x.result.truncated:
        editable = (
            _pretty(x.result.value)
            if x.result.content_type == "application/json"
            else json.dumps(x.result.value)
        )
    return render(
        request,
        "execution.html",
        tenant=client.tenant,
        x=x,
        e=x.execution,
        editable=editable,
        can_fork=x.execution.status != "RETRYING",
    )


@router.get("/usage", response_class=HTMLResponse)
async def usage(request: Request, tenant: Tenant = None) -> Response:
    client = _client(request, tenant)
    sections = []
    for group, title in (
        ("tenant", "per tenant"),
        ("graph", "per graph"),
        ("day", "per day (UTC)"),
    ):
        rows = await api.usage_rows(client, group)
        sections.append((title, group, rows, Markup(charts.bars(rows, title=title))))
    return render(request, "usage.html", tenant=client.tenant, sections=sections)


__all__ = ["NotSignedIn", "error_page", "router"]
