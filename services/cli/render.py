"""Render recorded lifetimes for people (tables) and programs (JSON)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message as ProtoMessage
from rich.cells import cell_len

from tickrail.sdk._envelope import execution_of, kind_of
from tickrail.sdk._payload import decode_bytes
from tickrail.sdk.client import Execution, LifetimeDetail
from tickrail.sdk.pb import envelope_pb2 as pb

PREVIEW_BYTES = 4096

STATUS = {v: k.removeprefix("EXECUTION_STATUS_") for k, v in pb.ExecutionStatus.items()}
LIFETIME = {v: k.removeprefix("LIFETIME_STATUS_") for k, v in pb.LifetimeStatus.items()}
KIND = {v: k.removeprefix("NODE_KIND_").lower() for k, v in pb.NodeKind.items()}
EDGE = {v: k.removeprefix("EDGE_KIND_") for k, v in pb.EdgeKind.items() if v}
QUIET_EVENTS = {"routed", "started"}  # every step has one: the table already shows them
LIFETIME_WORDS = {
    "completed": "COMPLETED",
    "failed": "FAILED",
    "aborted": "ABORTED",
    "paused": "PAUSED",
    "resumed": "RESUMED",
    "guardrail": "GUARDRAIL",
}


def payload_json(payload: pb.Payload) -> dict[str, Any]:
    """A payload for JSON output: decoded value when small, else its size or blob ref."""
    body = payload.WhichOneof("body")
    if body is None:
        return {}
    if body == "blob":
        return {
            "content_type": payload.content_type,
            "blob": MessageToDict(payload.blob, preserving_proto_field_name=True),
        }
    data = payload.inline
    out: dict[str, Any] = {"content_type": payload.content_type, "size": len(data)}
    if len(data) <= PREVIEW_BYTES:
        value = decode_bytes(payload.content_type, data)
        out["value"] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
    return out


def message_json(message: ProtoMessage) -> dict[str, Any]:
    """MessageToDict, with every Payload rendered by ``payload_json`` and every
    64-bit integer as a JSON number (MessageToDict makes them strings)."""
    out: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True)
    _fix_values(message, out)
    return out


_INT64 = frozenset({FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64})


def _fix_values(message: ProtoMessage, out: dict[str, Any]) -> None:
    for field, value in message.ListFields():
        key = field.name
        if key not in out:
            continue
        if field.message_type is None:
            if field.cpp_type in _INT64:
                out[key] = [int(v) for v in value] if field.is_repeated else int(value)
            continue
        if field.message_type.full_name == "tickrail.v1.Payload":
            out[key] = (
                [payload_json(v) for v in value] if field.is_repeated else payload_json(value)
            )
        elif field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if (
                value_field.message_type is not None
                and value_field.message_type.full_name == "tickrail.v1.Payload"
            ):
                out[key] = {k: payload_json(v) for k, v in value.items()}
            elif value_field.message_type is not None:
                for k, v in value.items():
                    _fix_values(v, out[key][str(k)])
            elif value_field.cpp_type in _INT64:
                out[key] = {k: int(v) for k, v in out[key].items()}
        elif field.is_repeated:
            for sub, sub_out in zip(value, out[key], strict=True):
                _fix_values(sub, sub_out)
        else:
            _fix_values(value, out[key])


def execution_json(execution: Execution) -> dict[str, Any]:
    which = kind_of(execution.envelope)
    node = execution_of(execution.envelope)
    body = message_json(node)
    # Usage is always there, as numbers, so programs need no default for zero.
    telemetry = node.telemetry
    body["telemetry"] = {
        **body.get("telemetry", {}),
        "tokens_in": int(telemetry.tokens_in),
        "tokens_out": int(telemetry.tokens_out),
        "cost_usd": float(telemetry.cost_usd),
        "latency_ms": float(telemetry.latency_ms),
    }
    return {"seq": execution.seq, "kind": which, **body}


def event_json(event: pb.LifetimeEvent) -> dict[str, Any]:
    out = message_json(event)
    out["seq"] = event.seq
    out["kind"] = event.WhichOneof("kind") or ""
    return out


def lifetime_json(detail: LifetimeDetail) -> dict[str, Any]:
    info = detail.info
    started = next((e for e in detail.events if e.WhichOneof("kind") == "started"), None)
    graph = started.started.graph if started else pb.GraphSpec()
    return {
        "lifetime_id": info.lifetime_id,
        "tenant_id": info.tenant_id,
        "graph": {"id": graph.graph_id, "version": graph.version},
        "status": info.status,
        "started_at": iso(info.started_at.timestamp()),
        "updated_at": iso(info.updated_at.timestamp()),
        "totals": totals(detail.executions),
        "executions": [execution_json(e) for e in detail.executions],
        "events": [event_json(e) for e in detail.events],
    }


def totals(executions: Sequence[Execution]) -> dict[str, Any]:
    tokens, cost = 0, 0.0
    for execution in executions:
        telemetry = execution.telemetry
        tokens += telemetry.tokens_in + telemetry.tokens_out
        cost += telemetry.cost_usd
    return {"executions": len(executions), "tokens": tokens, "cost_usd": round(cost, 6)}


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def preview(payload: pb.Payload, width: int = 60) -> str:
    body = payload.WhichOneof("body")
    if body is None:
        return ""
    if body == "blob":
        return f"<{payload.blob.size:,} bytes at {payload.blob.uri}>"
    data = payload.inline
    if payload.content_type.startswith(("application/json", "text/")):
        text = data[: width * 4].decode(errors="replace")
        if payload.content_type.startswith("text/"):
            text = json.dumps(text, ensure_ascii=False)  # °C stays °C
    else:
        text = f"<{len(data):,} bytes>"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: str = "") -> list[str]:
    """Columns as wide as their longest value (nothing is cut), two spaces apart.

    ``right`` is one character per column, ``>`` for right-aligned (numbers),
    ``<`` (the default) for left-aligned.
    """
    # Display width, not len(): a wide character (天, 🚀) takes two cells.
    widths = [max([cell_len(h), *(cell_len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    align = right.ljust(len(header), "<")

    def cell(i: int, text: str) -> str:
        pad = " " * (widths[i] - cell_len(text))
        return pad + text if align[i] == ">" else text + pad

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell(i, c) for i, c in enumerate(cells)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def lifetime_table(detail: LifetimeDetail) -> str:
    """The human view of ``lifetimes show``: one line per execution, with the exec id
    that ``lifetimes resume --exec`` and ``fork --from`` take."""
    info = detail.info
    started = next((e for e in detail.events if e.WhichOneof("kind") == "started"), None)
    graph = started.started.graph if started else pb.GraphSpec()
    t = totals(detail.executions)
    lines = [
        f"lifetime {info.lifetime_id}  {info.status}",
        f"  graph {graph.graph_id}@{graph.version}  tenant {info.tenant_id}  "
        f"started {iso(info.started_at.timestamp())}",
        f"  {t['executions']} executions, {t['tokens']:,} tokens, ${t['cost_usd']:.4f}",
        "",
    ]
    t0 = info.started_at.timestamp()
    rows = []
    for record in detail.executions:
        ex = execution_of(record.envelope)
        h, tel = ex.header, ex.telemetry
        if isinstance(ex, pb.TaskExecution):
            result = f"error: {ex.result.error}" if ex.result.error else preview(ex.result.output)
            if h.status == pb.EXECUTION_STATUS_WAITING:
                result = f"asks: {ex.result.human_prompt}"
        elif ex.result.error:
            result = f"error: {ex.result.error}"
        elif ex.result.finish:
            result = "finish"
        else:
            result = "→ " + ", ".join(ex.result.next_task_names)
        branch = "".join(f"[{b.index}]" for b in h.branch)
        offset = h.finished_at.ToNanoseconds() / 1e9 - t0
        rows.append(
            [
                str(record.seq),
                f"{offset:.3f}s",
                h.exec_id,
                h.name + branch,
                KIND[h.kind],
                STATUS[h.status],
                str(h.attempt),
                str(h.iteration),
                f"{tel.tokens_in + tel.tokens_out:,}",
                f"{tel.latency_ms:.1f}",
                result,
            ]
        )
    header = ["seq", "+time", "exec id", "node", "kind", "status", "try", "iter", "tokens", "ms"]
    lines += [
        "  " + line for line in table([*header, "result"], rows, right=">>" + "<" * 4 + ">" * 4)
    ]
    notable = [
        (kind, e) for e in detail.events if (kind := e.WhichOneof("kind") or "") not in QUIET_EVENTS
    ]
    if notable:
        lines += ["", "  decisions:"]
    width = max((len(kind) for kind, _ in notable), default=0)
    for kind, event in notable:
        lines.append(f"    {kind:<{width}}  {describe_event(event)}")
    return "\n".join(lines)


def describe_event(event: pb.LifetimeEvent) -> str:
    kind = event.WhichOneof("kind")
    if kind == "guardrail":
        g = event.guardrail
        seen = ", ".join(f"{k}={v:g}" for k, v in sorted(g.observed.items()))
        extra = f" {g.observed_json}" if g.observed_json else ""
        return (
            f"rule {g.rule!r} ({g.scope}) -> {g.action} on {g.exec_id}: {g.message} "
            f"[saw {seen}{extra}] policy {g.policy_version}"
        )
    if kind == "completed":
        return f"output {preview(event.completed.output)}"
    if kind == "failed":
        return event.failed.reason
    if kind == "aborted":
        return event.aborted.reason
    if kind == "paused":
        return event.paused.reason or "paused"
    if kind == "resumed":
        return event.resumed.reason or "resumed"
    if kind == "routed":
        r = event.routed
        nxt = ", ".join(d.name for d in r.dispatched)
        return f"{r.name or 'start'} -> {nxt or r.note}"
    if kind == "refused":  # nothing changed: an envelope that answered nothing dispatched
        f = event.refused
        return f"refused an envelope claiming {f.exec_id!r} ({f.name!r}): {f.reason}"
    return kind or ""
