"""The recorded graph as an SVG picture: nodes by status with run counts, edges taken.

Layout is layered, top to bottom: edges that go back to a node still on the
depth-first path from the entry (loops) are drawn as arcs on the side and
ignored for layering, every other node sits one layer below its deepest
predecessor, and each layer is ordered by its predecessors' mean position
(one barycentre pass), which keeps small agent graphs free of most crossings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from html import escape
from typing import Any

from .models import EventOut, ExecutionOut

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 44, 30, 56, 20
END = "(end)"
STATUS_FILL = {
    "SUCCEEDED": "#c9f0d0",
    "FAILED": "#f7c5c5",
    "TIMED_OUT": "#f7c5c5",
    "RETRYING": "#fde2b8",
    "WAITING": "#fff1a8",
    "RUNNING": "#c8dcff",
    "NOT_RUN": "#eeeeee",
}
EDGE_COLOUR = {"NORMAL": "#666", "PARALLEL": "#2a62c9", "JOIN": "#8a3ab9", "FINAL": "#222"}


@dataclass(frozen=True, slots=True)
class NodeState:
    status: str  # a STATUS_FILL key
    runs: int  # distinct dispatches (inputs) that ran
    attempts: int


def node_states(
    spec: dict[str, Any], executions: list[ExecutionOut], running: set[str], waiting: set[str]
) -> dict[str, NodeState]:
    """Per node: the latest execution's status (or RUNNING / NOT_RUN), runs, attempts.

    ``running``: names of nodes dispatched and not yet recorded; ``waiting``:
    exec ids of questions still unanswered.
    """
    runs: dict[str, set[str]] = {}
    attempts: Counter[str] = Counter()
    last: dict[str, ExecutionOut] = {}
    for e in executions:
        runs.setdefault(e.name, set()).add(e.input_id)
        attempts[e.name] += 1
        last[e.name] = e
    states = {}
    for node in spec.get("nodes", []):
        name = node["name"]
        if name in running:
            status = "RUNNING"
        elif name in last:
            status = last[name].status
            if status == "WAITING" and last[name].exec_id not in waiting:
                status = "SUCCEEDED"  # answered: the re-run is recorded or on its way
        else:
            status = "NOT_RUN"
        states[name] = NodeState(status, len(runs.get(name, ())), attempts[name])
    return states


def dispatchers(events: list[EventOut]) -> dict[str, tuple[str, str]]:
    """input id -> (exec id, node name) of the execution whose routing dispatched it."""
    found: dict[str, tuple[str, str]] = {}
    for ev in events:
        if ev.kind != "routed":
            continue
        source = (str(ev.body.get("exec_id", "")), str(ev.body.get("name", "")))
        for node_input in ev.body.get("dispatched", []):
            found.setdefault(str(node_input.get("input_id", "")), source)
    return found


def edges_taken(events: list[EventOut], executions: list[ExecutionOut]) -> Counter[tuple[str, str]]:
    """How often each (source, target) edge dispatched work, from the routing decisions.

    An input that names its parent executions (a join Plan's: one per branch
    that arrived) counts an edge from each of them, not only from the branch
    that happened to arrive last; the FINAL edge counts when the lifetime
    completed from that node.
    """
    names = {e.exec_id: e.name for e in executions}
    taken: Counter[tuple[str, str]] = Counter()
    for ev in events:
        if ev.kind != "routed" or ev.body.get("deferred"):
            continue
        for node_input in ev.body.get("dispatched", []):
            target = str(node_input.get("name", ""))
            parents = [names[p] for p in node_input.get("parent_exec_ids", []) if p in names]
            for source in parents or [str(ev.body.get("name", ""))]:
                taken[(source, target)] += 1
    for ev in events:
        if ev.kind == "completed" and ev.body.get("exec_id") in names:
            taken[(names[ev.body["exec_id"]], END)] += 1
    return taken


def _layers(
    names: list[str], entry: str, edges: list[tuple[str, str]]
) -> tuple[dict[str, int], set[tuple[str, str]]]:
    succ: dict[str, list[str]] = {n: [] for n in names}
    for s, t in edges:
        if s in succ and t in succ:
            succ[s].append(t)
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the path, 2 done
    order: list[str] = []

    def visit(root: str) -> None:
        # Iterative DFS: graphs may be deep, recursion limits are not a layout concern.
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack.pop()
            if i < len(succ[node]):
                stack.append((node, i + 1))
                nxt = succ[node][i]
                if state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                order.append(node)

    for root in [entry, *names]:
        if root in succ and root not in state:
            visit(root)
    layer = {n: 0 for n in names}
    for node in reversed(order):  # reverse post-order is a topological order without back edges
        for nxt in succ[node]:
            if (node, nxt) not in back:
                layer[nxt] = max(layer[nxt], layer[node] + 1)
    return layer, back


def render(
    spec: dict[str, Any], states: dict[str, NodeState], taken: Counter[tuple[str, str]]
) -> str:
    nodes = [n["name"] for n in spec.get("nodes", [])]
    kinds = {n["name"]: n.get("kind", "") for n in spec.get("nodes", [])}
    raw = [
        (e.get("source", ""), e.get("target", ""), e.get("kind", "")) for e in spec.get("edges", [])
    ]
    edges = [(s, t or END, k.removeprefix("EDGE_KIND_")) for s, t, k in raw]
    names = [*nodes, END] if any(t == END for _, t, _ in edges) else nodes
    layer, back = _layers(names, spec.get("entry", ""), [(s, t) for s, t, _ in edges])
    rows: dict[int, list[str]] = {}
    for name in names:
        rows.setdefault(layer[name], []).append(name)
    pos: dict[str, tuple[float, float]] = {}
    preds: dict[str, list[str]] = {}
    for s, t, _ in edges:
        if (s, t) not in back:
            preds.setdefault(t, []).append(s)
    for depth in sorted(rows):
        row = rows[depth]
        if depth:

            def centre(n: str) -> float:
                xs = [pos[p][0] for p in preds.get(n, []) if p in pos]
                return sum(xs) / len(xs) if xs else 0.0

            row.sort(key=centre)
        for i, name in enumerate(row):
            pos[name] = (i, depth)
    widest = max((len(r) for r in rows.values()), default=1)
    width = PAD * 2 + widest * (NODE_W + GAP_X) + 120  # room for loop arcs on the right
    height = PAD * 2 + len(rows) * (NODE_H + GAP_Y)

    def xy(name: str) -> tuple[float, float]:
        i, depth = pos[name]
        row_width = len(rows[int(depth)]) * (NODE_W + GAP_X) - GAP_X
        left = PAD + (widest * (NODE_W + GAP_X) - GAP_X - row_width) / 2
        return left + i * (NODE_W + GAP_X), PAD + depth * (NODE_H + GAP_Y)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="graph {escape(spec.get("graph_id", ""))}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" '
        'fill="context-stroke"/></marker></defs>',
    ]
    for s, t, kind in edges:
        if s not in pos or t not in pos:
            continue
        count = taken.get((s, t), 0)
        (x1, y1), (x2, y2) = xy(s), xy(t)
        colour = EDGE_COLOUR.get(kind, "#666")
        stroke = 2.6 if count else 1.1
        dash = ' stroke-dasharray="5 4"' if not count else ""
        if (s, t) in back or y2 <= y1:
            sx, sy = x1 + NODE_W, y1 + NODE_H / 2
            tx, ty = x2 + NODE_W, y2 + NODE_H / 2
            bulge = 40 + 12 * abs(pos[s][1] - pos[t][1])
            path = f"M{sx},{sy} C{sx + bulge},{sy} {tx + bulge},{ty} {tx},{ty}"
            lx, ly = max(sx, tx) + bulge * 0.75, (sy + ty) / 2
        else:
            sx, sy = x1 + NODE_W / 2, y1 + NODE_H
            tx, ty = x2 + NODE_W / 2, y2
            path = f"M{sx},{sy} C{sx},{sy + GAP_Y / 2} {tx},{ty - GAP_Y / 2} {tx},{ty}"
            lx, ly = (sx + tx) / 2 + 4, (sy + ty) / 2
        out.append(
            f'<path class="edge" data-source="{escape(s)}" data-target="{escape(t)}" '
            f'data-kind="{kind}" data-taken="{count}" d="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="{stroke}"{dash} marker-end="url(#arrow)">'
            f"<title>{escape(s)} → {escape(t)} ({kind.lower()}), taken {count}x</title></path>"
        )
        if count:
            out.append(
                f'<text class="edge-count" x="{lx}" y="{ly}" font-size="11" fill="{colour}">'
                f"{count}x</text>"
            )
    for name in names:
        x, y = xy(name)
        if name == END:
            done = any(t == END for (_, t) in taken)
            fill = STATUS_FILL["SUCCEEDED" if done else "NOT_RUN"]
            out.append(
                f'<g class="node end" data-node="{END}"><ellipse cx="{x + NODE_W / 2}" '
                f'cy="{y + NODE_H / 2}" rx="40" ry="{NODE_H / 2 - 4}" fill="{fill}" stroke="#222"/>'
                f'<text x="{x + NODE_W / 2}" y="{y + NODE_H / 2 + 4}" text-anchor="middle" '
                f'font-size="12">end</text></g>'
            )
            continue
        st = states.get(name, NodeState("NOT_RUN", 0, 0))
        plan = kinds.get(name) == "NODE_KIND_PLAN"
        radius = 18 if plan else 4
        runs = f"{st.runs}x" if st.runs == st.attempts else f"{st.runs}x ({st.attempts} attempts)"
        out.append(
            f'<g class="node" data-node="{escape(name)}" data-status="{st.status}" '
            f'data-runs="{st.runs}" data-attempts="{st.attempts}">'
            f"<title>{escape(name)} ({'plan' if plan else 'task'}): {st.status.lower()}, "
            f"{runs}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="{radius}" '
            f'fill="{STATUS_FILL.get(st.status, "#eee")}" stroke="#444" '
            f'stroke-width="{1.8 if st.runs else 1}"/>'
            f'<text x="{x + NODE_W / 2}" y="{y + 18}" text-anchor="middle" font-size="13" '
            f'font-weight="600">{escape(name)}</text>'
            f'<text class="runs" x="{x + NODE_W / 2}" y="{y + 34}" text-anchor="middle" '
            f'font-size="11" fill="#333">{"plan" if plan else "task"} · {runs}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
