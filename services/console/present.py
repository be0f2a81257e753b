"""From the lifecycle client's results to the API's shapes (no I/O here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.protobuf.json_format import MessageToDict

from tickrail.sdk.pb import envelope_pb2 as pb

from .models import (
    BranchOut,
    EventOut,
    ExecutionOut,
    LifetimeDetailOut,
    LifetimeOut,
    PayloadOut,
    TelemetryOut,
    TotalsOut,
    WaitingOut,
)

if TYPE_CHECKING:
    from tickrail.sdk.client import Execution, LifetimeDetail, LifetimeInfo, UsageRow

TERMINAL = {"COMPLETED", "FAILED", "ABORTED"}
EXEC_STATUS = {v: k.removeprefix("EXECUTION_STATUS_") for k, v in pb.ExecutionStatus.items()}
EDGE = {v: k.removeprefix("EDGE_KIND_") for k, v in pb.EdgeKind.items()}
#: Inline values larger than this are not decoded into API answers or pages.
SHOW_LIMIT = 256 * 1024


def when(stamp: Any) -> datetime | None:
    """A protobuf Timestamp as a datetime; None when unset."""
    if not stamp.seconds and not stamp.nanos:
        return None
    result: datetime = stamp.ToDatetime(tzinfo=UTC)
    return result


def decode(content_type: str, data: bytes) -> Any:
    """JSON data, text, or (for anything else) a note saying how many bytes."""
    if content_type == "application/json":
        try:
            return json.loads(data)
        except ValueError:
            return data.decode(errors="replace")
    if content_type.startswith("text/"):
        return data.decode(errors="replace")
    return f"<{len(data):,} bytes of {content_type or 'binary data'}>"


def payload(p: pb.Payload) -> PayloadOut | None:
    """A payload as shown: decoded when inline and small; offloaded ones by size.

    The blob URI is not shown: it names storage the viewer has no business with.
    """
    body = p.WhichOneof("body")
    if body is None:
        return None
    if body == "blob":
        return PayloadOut(
            content_type=p.content_type,
            size=p.blob.size,
            offloaded=True,
            value=None,
            sha256=p.blob.sha256,
        )
    data = p.inline
    value = decode(p.content_type, data) if len(data) <= SHOW_LIMIT else None
    return PayloadOut(content_type=p.content_type, size=len(data), offloaded=False, value=value)


def lifetime(info: LifetimeInfo, usage: UsageRow | None = None) -> LifetimeOut:
    end = info.updated_at if info.status in TERMINAL else datetime.now(UTC)
    return LifetimeOut(
        lifetime_id=info.lifetime_id,
        tenant_id=info.tenant_id,
        graph_id=info.graph_id,
        status=info.status,
        started_at=info.started_at,
        updated_at=info.updated_at,
        duration_s=round(max((end - info.started_at).total_seconds(), 0.0), 3),
        events=info.events,
        tokens=None if usage is None else usage.tokens_in + usage.tokens_out,
        cost_usd=None if usage is None else usage.cost_usd,
        executions=None if usage is None else usage.executions,
    )


def execution(e: Execution) -> ExecutionOut:
    h, t = e.header, e.telemetry
    out = ExecutionOut(
        exec_id=h.exec_id,
        seq=e.seq,
        kind=e.kind,
        name=h.name,
        status=EXEC_STATUS.get(h.status, str(h.status)),
        attempt=h.attempt,
        iteration=h.iteration,
        input_id=h.input_id,
        edge_taken=EDGE.get(h.edge_taken, ""),
        parent_exec_ids=list(h.parent_exec_ids),
        branch=[BranchOut(fanout_id=b.fanout_id, index=b.index, width=b.width) for b in h.branch],
        created_at=when(h.created_at),
        started_at=when(h.started_at),
        finished_at=when(h.finished_at),
        telemetry=TelemetryOut(
            tokens_in=t.tokens_in,
            tokens_out=t.tokens_out,
            cost_usd=t.cost_usd,
            latency_ms=t.latency_ms,
            model=t.model,
            metrics=dict(t.metrics),
        ),
    )
    if e.kind == "plan":
        r = e.envelope.plan.result
        out.error, out.error_type = r.error, r.error_type
        out.next, out.finish = list(r.next_task_names), r.finish
        out.result = payload(r.output)
    else:
        tr = e.envelope.task.result
        out.error, out.error_type, out.human_prompt = tr.error, tr.error_type, tr.human_prompt
        out.result = payload(tr.output)
    return out


def event(e: pb.LifetimeEvent) -> EventOut:
    kind = e.WhichOneof("kind") or ""
    body = MessageToDict(getattr(e, kind), preserving_proto_field_name=True) if kind else {}
    if kind == "started":
        body.pop("graph", None)  # in the detail's `graph`; no need to send it twice
    return EventOut(
        seq=e.seq, event_id=e.event_id, kind=kind, created_at=when(e.created_at), body=body
    )


def inputs_by_id(events: list[pb.LifetimeEvent]) -> dict[str, pb.NodeInput]:
    """Every dispatched NodeInput of the lifetime, by input id."""
    found: dict[str, pb.NodeInput] = {}
    for e in events:
        if e.WhichOneof("kind") == "routed":
            for node_input in e.routed.dispatched:
                found[node_input.input_id] = node_input
    return found


def waiting(detail: LifetimeDetail) -> list[WaitingOut]:
    """WAITING executions nobody has answered yet (answers re-dispatch the node)."""
    if detail.info.status != "PAUSED":
        return []
    answered = {i.answers_exec_id for i in inputs_by_id(detail.events).values()}
    answered |= {
        e.resumed.exec_id
        for e in detail.events
        if e.WhichOneof("kind") == "resumed" and e.resumed.HasField("human_input")
    }
    later: set[tuple[str, str]] = set()  # (name, branch) of runs after each point
    open_questions = []
    for e in reversed(detail.executions):
        where = (e.header.name, str(list(e.header.branch)))
        if (
            e.kind == "task"
            and e.header.status == pb.EXECUTION_STATUS_WAITING
            and e.header.exec_id not in answered
            and where not in later  # a later run of the node on its branch got the answer
        ):
            open_questions.append(
                WaitingOut(
                    exec_id=e.header.exec_id,
                    name=e.header.name,
                    prompt=e.envelope.task.result.human_prompt,
                )
            )
        later.add(where)
    return open_questions[::-1]


def detail(d: LifetimeDetail, usage: UsageRow | None = None) -> LifetimeDetailOut:
    started = d.events[0].started if d.events else pb.LifetimeStarted()
    output = None
    for e in d.events:
        if e.WhichOneof("kind") == "completed":
            output = payload(e.completed.output)
    executions = [execution(e) for e in d.executions]
    return LifetimeDetailOut(
        lifetime=lifetime(d.info, usage),
        graph=MessageToDict(started.graph, preserving_proto_field_name=True),
        labels=dict(started.labels),
        input=payload(started.input),
        output=output,
        forked_from=started.forked_from_lifetime,
        executions=executions,
        events=[event(e) for e in d.events],
        waiting=waiting(d),
        totals=TotalsOut(
            tokens_in=sum(x.telemetry.tokens_in for x in executions),
            tokens_out=sum(x.telemetry.tokens_out for x in executions),
            cost_usd=sum(x.telemetry.cost_usd for x in executions),
            executions=len(executions),
        ),
    )
