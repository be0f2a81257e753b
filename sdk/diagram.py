"""Pictures of a graph: Mermaid flowcharts, Graphviz DOT and plain JSON.

Drawn from the ``GraphSpec`` (what a lifetime records), so a YAML graph, a
Python graph and a recorded lifetime's graph all draw the same way. Tasks are
boxes, Plans are hexagons; NORMAL edges are solid, PARALLEL dashed and
labelled, JOIN thick and labelled, FINAL edges go to an end node.
"""

from __future__ import annotations

import json
from typing import Any

from tickrail.sdk.pb import envelope_pb2 as pb

_KIND = {pb.NODE_KIND_TASK: "task", pb.NODE_KIND_PLAN: "plan"}
_EDGE = {
    pb.EDGE_KIND_NORMAL: "normal",
    pb.EDGE_KIND_PARALLEL: "parallel",
    pb.EDGE_KIND_JOIN: "join",
    pb.EDGE_KIND_FINAL: "final",
}
START, END = "__start__", "__end__"


def to_json(spec: pb.GraphSpec) -> dict[str, Any]:
    return {
        "graph_id": spec.graph_id,
        "version": spec.version,
        "entry": spec.entry,
        "nodes": [
            {"name": n.name, "kind": _KIND.get(n.kind, "unknown"), "impl": n.impl}
            for n in spec.nodes
        ],
        "edges": [
            {"source": e.source, "target": e.target or None, "kind": _EDGE.get(e.kind, "normal")}
            for e in spec.edges
        ],
    }


def to_json_text(spec: pb.GraphSpec) -> str:
    return json.dumps(to_json(spec), indent=2, ensure_ascii=False) + "\n"


# ---- Mermaid ------------------------------------------------------------------


def _mermaid_label(text: str) -> str:
    # Inside "..." Mermaid reads entity codes; a literal quote would end the label.
    escaped = (
        text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )
    return f'"{escaped}"'


def to_mermaid(spec: pb.GraphSpec, direction: str = "TD") -> str:
    """A Mermaid ``flowchart``; paste into a ```mermaid block to render it."""
    if direction not in ("TD", "TB", "BT", "LR", "RL"):
        raise ValueError(f"direction must be TD, TB, BT, LR or RL, got {direction!r}")
    # Node names may be Mermaid keywords ("end", "graph"), so ids are positional.
    ids = {n.name: f"n{i}" for i, n in enumerate(spec.nodes)}
    lines = [f"flowchart {direction}"]
    lines.append(f'    {START}(["start"])')
    for n in spec.nodes:
        label = _mermaid_label(n.name)
        shape = f"{{{{{label}}}}}" if n.kind == pb.NODE_KIND_PLAN else f"[{label}]"
        lines.append(f"    {ids[n.name]}{shape}")
    if any(e.kind == pb.EDGE_KIND_FINAL for e in spec.edges):
        lines.append(f'    {END}(["end"])')
    if spec.entry in ids:
        lines.append(f"    {START} --> {ids[spec.entry]}")
    for e in spec.edges:
        source = ids.get(e.source)
        target = END if e.kind == pb.EDGE_KIND_FINAL else ids.get(e.target)
        if source is None or target is None:
            continue
        if e.kind == pb.EDGE_KIND_PARALLEL:
            lines.append(f"    {source} -.->|parallel| {target}")
        elif e.kind == pb.EDGE_KIND_JOIN:
            lines.append(f"    {source} ==>|join| {target}")
        else:
            lines.append(f"    {source} --> {target}")
    lines.append("    classDef plan fill:#eef,stroke:#447")
    plans = [ids[n.name] for n in spec.nodes if n.kind == pb.NODE_KIND_PLAN]
    if plans:
        lines.append(f"    class {','.join(plans)} plan")
    return "\n".join(lines) + "\n"


# ---- Graphviz DOT -------------------------------------------------------------


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(spec: pb.GraphSpec) -> str:
    """A Graphviz digraph (``dot -Tsvg``)."""
    lines = [
        f"digraph {_dot_id(f'{spec.graph_id}@{spec.version}')} {{",
        "    rankdir=TB;",
        '    node [fontname="Helvetica"];',
        f'    {_dot_id(START)} [label="start", shape=oval];',
    ]
    for n in spec.nodes:
        shape = "hexagon" if n.kind == pb.NODE_KIND_PLAN else "box"
        lines.append(f"    {_dot_id(n.name)} [shape={shape}];")
    if any(e.kind == pb.EDGE_KIND_FINAL for e in spec.edges):
        lines.append(f'    {_dot_id(END)} [label="end", shape=oval];')
    if spec.entry:
        lines.append(f"    {_dot_id(START)} -> {_dot_id(spec.entry)};")
    for e in spec.edges:
        target = END if e.kind == pb.EDGE_KIND_FINAL else e.target
        attrs = ""
        if e.kind == pb.EDGE_KIND_PARALLEL:
            attrs = ' [style=dashed, label="parallel"]'
        elif e.kind == pb.EDGE_KIND_JOIN:
            attrs = ' [penwidth=2, label="join"]'
        lines.append(f"    {_dot_id(e.source)} -> {_dot_id(target)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"
