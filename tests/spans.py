"""Span trees of lifetimes, for the tracing tests (embedded and across processes).

A span here is a plain dict, whatever exported it: ``name``, ``trace_id``,
``span_id``, ``parent_id`` (None for a root), ``start``/``end`` (ns),
``attributes`` and ``service`` (the exporting process's service.name).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

Span = dict[str, Any]


def from_sdk(spans: Iterable[Any]) -> list[Span]:
    """Spans from the SDK's InMemorySpanExporter (ReadableSpan objects)."""
    out = []
    for s in spans:
        out.append(
            {
                "name": s.name,
                "trace_id": f"{s.context.trace_id:032x}",
                "span_id": f"{s.context.span_id:016x}",
                "parent_id": f"{s.parent.span_id:016x}" if s.parent else None,
                "start": s.start_time,
                "end": s.end_time,
                "attributes": dict(s.attributes or {}),
                "status": s.status.status_code.name,
                "events": [(e.name, dict(e.attributes or {})) for e in s.events],
                "service": s.resource.attributes.get("service.name"),
            }
        )
    return out


def from_console(text: str) -> list[Span]:
    """Spans printed by the console exporter, found among other output lines."""
    decoder = json.JSONDecoder()
    out: list[Span] = []
    i = 0
    while (j := text.find("{", i)) >= 0:
        try:
            obj, i = decoder.raw_decode(text, j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        if not isinstance(obj, dict) or "context" not in obj:
            continue
        out.append(
            {
                "name": obj["name"],
                "trace_id": obj["context"]["trace_id"].removeprefix("0x"),
                "span_id": obj["context"]["span_id"].removeprefix("0x"),
                "parent_id": (obj["parent_id"] or "").removeprefix("0x") or None,
                "start": _ns(obj["start_time"]),
                "end": _ns(obj["end_time"]),
                "attributes": obj.get("attributes") or {},
                "status": obj["status"]["status_code"],
                "events": [(e["name"], e.get("attributes") or {}) for e in obj.get("events", [])],
                "service": obj["resource"]["attributes"].get("service.name"),
            }
        )
    return out


def _ns(stamp: str) -> int:
    moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1e9)


def check_lifetime_tree(spans: list[Span], lifetime_id: str, trace_id: str) -> dict[str, Span]:
    """Assert the shape services/tracing.py promises; return the root and executions by id."""
    mine = [s for s in spans if s["attributes"].get("tickrail.lifetime_id") == lifetime_id]
    assert mine, "no span names the lifetime"
    by_id = {s["span_id"]: s for s in spans}
    for span in mine:
        assert span["trace_id"] == trace_id, span
    (root,) = [s for s in mine if s["name"].startswith("lifetime ")]
    assert root["parent_id"] is None
    executions = [s for s in mine if s["name"].split(" ")[0] in ("task", "plan")]
    for span in executions:
        assert span["parent_id"] == root["span_id"], span
        for key in ("tickrail.node", "tickrail.kind", "tickrail.attempt", "tickrail.iteration"):
            assert key in span["attributes"], (key, span)
        for key in ("tickrail.status", "tickrail.exec_id", "tickrail.tokens_in"):
            assert key in span["attributes"], (key, span)
    exec_ids = {s["span_id"] for s in executions}
    persists = [s for s in mine if s["name"] == "persist"]
    # Every execution was persisted, each persist span under its execution's span.
    assert sorted(by_id[p["parent_id"]]["attributes"]["tickrail.exec_id"] for p in persists) == (
        sorted(s["attributes"]["tickrail.exec_id"] for s in executions)
    )
    assert {p["parent_id"] for p in persists} == exec_ids
    decides = [s for s in mine if s["name"] == "decide"]
    persist_ids = {p["span_id"] for p in persists}
    # The start command is decided under the root; every execution under its persist span.
    assert [d for d in decides if d["parent_id"] == root["span_id"]]
    assert {d["parent_id"] for d in decides} - {root["span_id"]} == persist_ids
    return {"root": root, **{s["attributes"]["tickrail.exec_id"]: s for s in executions}}


def overlapping(spans: list[Span]) -> bool:
    """Every pair ran at the same time at some point."""
    return max(s["start"] for s in spans) < min(s["end"] for s in spans)
