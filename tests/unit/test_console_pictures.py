"""The console's pictures from recorded data: layout, rows, counts, and escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the console needs the ui extra")

from tickrail.services.console import graph_svg, timeline
from tickrail.services.console.models import (
    BranchOut,
    EventOut,
    ExecutionOut,
    TelemetryOut,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def ex(
    exec_id: str,
    name: str,
    seq: int,
    *,
    branch: tuple[tuple[str, int, int], ...] = (),
    status: str = "SUCCEEDED",
    start: float = 0.0,
    end: float = 0.1,
    attempt: int = 1,
    input_id: str | None = None,
    parents: tuple[str, ...] = (),
    prompt: str = "",
) -> ExecutionOut:
    return ExecutionOut(
        exec_id=exec_id,
        seq=seq,
        kind="task",
        name=name,
        status=status,
        attempt=attempt,
        iteration=1,
        input_id=input_id or exec_id.rsplit(".", 1)[0],
        edge_taken="NORMAL",
        parent_exec_ids=list(parents),
        branch=[BranchOut(fanout_id=f, index=i, width=w) for f, i, w in branch],
        created_at=T0 + timedelta(seconds=start),
        started_at=T0 + timedelta(seconds=start),
        finished_at=T0 + timedelta(seconds=end),
        telemetry=TelemetryOut(
            tokens_in=0, tokens_out=0, cost_usd=0, latency_ms=0, model="", metrics={}
        ),
        human_prompt=prompt,
    )


def routed(seq: int, exec_id: str, name: str, *targets: tuple[str, str, list[str]]) -> EventOut:
    dispatched: list[dict[str, Any]] = [
        {"input_id": i, "name": n, "parent_exec_ids": p} for i, n, p in targets
    ]
    return EventOut(
        seq=seq,
        event_id=f"e{seq}",
        kind="routed",
        created_at=T0,
        body={"exec_id": exec_id, "name": name, "dispatched": dispatched},
    )


def test_nested_fan_outs_get_one_row_per_branch_under_their_parent() -> None:
    outer = (("f1", 0, 2),)
    executions = [
        ex("l.1.1", "start", 1),
        ex("l.2.1", "a", 2, branch=outer),
        ex("l.3.1", "b", 3, branch=(("f1", 1, 2),)),
        ex("l.4.1", "a1", 4, branch=(*outer, ("f2", 0, 2))),
        ex("l.5.1", "a2", 5, branch=(*outer, ("f2", 1, 2))),
        ex("l.6.1", "join", 6, parents=("l.4.1", "l.5.1")),
    ]
    rows = timeline.rows(executions)
    assert [r.label.strip() for r in rows] == [
        "main",
        "↳ a [1/2]",
        "↳ a1 [1/2]",
        "↳ a2 [2/2]",
        "↳ b [2/2]",
    ]
    assert [len(r.executions) for r in rows] == [2, 1, 1, 1, 1]
    svg = timeline.render(executions, [], answered_by={}, dispatched_by={}, now=T0, running=False)
    tree = ET.fromstring(svg)  # well-formed
    assert tree.get("data-rows") == "5"
    assert len(tree.findall(f".//{SVG}rect[@class='bar']")) == 6
    assert len(tree.findall(f".//{SVG}path[@class='link']")) == 2  # the join from 2 branches


def test_retries_waits_and_guardrails_are_marked() -> None:
    executions = [
        ex("l.1.1", "flaky", 1, status="RETRYING", end=0.1),
        ex("l.1.2", "flaky", 2, attempt=2, start=0.2, end=0.3),
        ex("l.2.1", "ask", 3, status="WAITING", start=0.3, end=0.35, prompt="ok?"),
        ex("l.3.1", "ask", 4, start=5.0, end=5.1),
    ]
    guard = EventOut(
        seq=9,
        event_id="g",
        kind="guardrail",
        created_at=T0 + timedelta(seconds=0.3),
        body={"exec_id": "l.1.2", "rule": "cap", "action": "PAUSE_LIFETIME"},
    )
    svg = timeline.render(
        executions,
        [guard],
        answered_by={"l.2.1": "l.3.1"},
        dispatched_by={},
        now=T0,
        running=False,
    )
    tree = ET.fromstring(svg)
    statuses = [r.get("data-status") for r in tree.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert statuses == ["RETRYING", "SUCCEEDED", "WAITING", "SUCCEEDED"]
    waits = [r for r in tree.iter(f"{SVG}rect") if r.get("class") == "human-wait"]
    assert len(waits) == 1 and float(waits[0].get("width", 0)) > 100  # 0.35 s .. 5 s
    assert len([p for p in tree.iter(f"{SVG}path") if p.get("class") == "guardrail"]) == 1


SPEC = {
    "graph_id": "loop",
    "entry": "plan",
    "nodes": [
        {"name": "plan", "kind": "NODE_KIND_PLAN"},
        {"name": "work", "kind": "NODE_KIND_TASK"},
        {"name": "<script>alert(1)</script>", "kind": "NODE_KIND_TASK"},
    ],
    "edges": [
        {"source": "plan", "target": "work", "kind": "EDGE_KIND_NORMAL"},
        {"source": "work", "target": "plan", "kind": "EDGE_KIND_NORMAL"},
        {"source": "plan", "target": "<script>alert(1)</script>", "kind": "EDGE_KIND_NORMAL"},
        {"source": "plan", "kind": "EDGE_KIND_FINAL"},
    ],
}


def test_a_loop_is_laid_out_counted_and_every_name_escaped() -> None:
    executions = [
        ex("l.1.1", "plan", 1),
        ex("l.2.1", "work", 2),
        ex("l.3.1", "plan", 3),
        ex("l.4.1", "work", 4),
        ex("l.5.1", "plan", 5),
    ]
    events = [
        routed(1, "l.1.1", "plan", ("l.2", "work", [])),
        routed(2, "l.2.1", "work", ("l.3", "plan", ["l.2.1"])),
        routed(3, "l.3.1", "plan", ("l.4", "work", [])),
        routed(4, "l.4.1", "work", ("l.5", "plan", ["l.4.1"])),
        EventOut(seq=5, event_id="c", kind="completed", created_at=T0, body={"exec_id": "l.5.1"}),
    ]
    states = graph_svg.node_states(SPEC, executions, running=set(), waiting=set())
    assert (states["plan"].runs, states["work"].runs) == (3, 2)
    assert states["<script>alert(1)</script>"].status == "NOT_RUN"
    taken = graph_svg.edges_taken(events, executions)
    assert taken[("plan", "work")] == 2 and taken[("work", "plan")] == 2
    assert taken[("plan", graph_svg.END)] == 1
    svg = graph_svg.render(SPEC, states, taken)
    assert "<script>" not in svg  # the odd node name is text, not markup
    tree = ET.fromstring(svg)
    nodes = {g.get("data-node"): g for g in tree.iter(f"{SVG}g") if g.get("data-node")}
    assert set(nodes) == {"plan", "work", "<script>alert(1)</script>", graph_svg.END}
    edges = {
        (p.get("data-source"), p.get("data-target")): p.get("data-taken")
        for p in tree.iter(f"{SVG}path")
        if p.get("class") == "edge"
    }
    assert edges[("work", "plan")] == "2"  # the loop's back edge, drawn as an arc
    assert edges[("plan", "<script>alert(1)</script>")] == "0"
