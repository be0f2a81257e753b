"""Graph drift: is this code's graph the structure a lifetime was recorded with?

A lifetime records its graph's structure (``GraphSpec``) when it starts and
every node input carries a digest of it. Code for the same graph id and
version may still have changed since (a node renamed, an edge added); running
it would route the lifetime differently from its record. ``graph_digest``
is what inputs carry; ``graph_differences`` names what changed, so the refusal
says what to fix.
"""

from __future__ import annotations

import hashlib

from tickrail.sdk.choice import DEFAULT_MAX_FANOUT
from tickrail.sdk.pb import envelope_pb2 as pb

_EDGE = {v: k.removeprefix("EDGE_KIND_") for k, v in pb.EdgeKind.items()}
_KIND = {pb.NODE_KIND_TASK: "Task", pb.NODE_KIND_PLAN: "Plan"}


def _structure(spec: pb.GraphSpec) -> pb.GraphSpec:
    """The spec without what does not change routing (``impl`` is informative)."""
    copy = pb.GraphSpec()
    copy.CopyFrom(spec)
    for node in copy.nodes:
        node.ClearField("impl")
    copy.max_fanout = copy.max_fanout or DEFAULT_MAX_FANOUT  # unset means the default
    return copy


def graph_digest(spec: pb.GraphSpec) -> str:
    """A short stable hash of the graph's structure (nodes, edges, caps, entry)."""
    raw = _structure(spec).SerializeToString(deterministic=True)
    return hashlib.sha256(raw).hexdigest()[:16]


def graph_differences(recorded: pb.GraphSpec, code: pb.GraphSpec) -> list[str]:
    """How ``code`` differs from ``recorded``, one readable line per difference."""
    out: list[str] = []
    if recorded.entry != code.entry:
        out.append(f"entry is {code.entry!r} in the code but {recorded.entry!r} in the record")
    recorded, code = _structure(recorded), _structure(code)
    for name in ("max_iterations", "max_steps", "max_fanout"):
        was, now = getattr(recorded, name), getattr(code, name)
        if was != now:
            out.append(f"{name} is {now} in the code but {was} in the record")
    old_nodes = {n.name: n for n in recorded.nodes}
    new_nodes = {n.name: n for n in code.nodes}
    for name in sorted(old_nodes.keys() - new_nodes.keys()):
        out.append(f"node {name!r} ({_KIND.get(old_nodes[name].kind, '?')}) is missing in the code")
    for name in sorted(new_nodes.keys() - old_nodes.keys()):
        out.append(f"node {name!r} ({_KIND.get(new_nodes[name].kind, '?')}) is new in the code")
    for name in sorted(old_nodes.keys() & new_nodes.keys()):
        was, now = old_nodes[name], new_nodes[name]
        if was.kind != now.kind:
            out.append(
                f"node {name!r} is a {_KIND.get(now.kind, '?')} in the code but a "
                f"{_KIND.get(was.kind, '?')} in the record"
            )
        if was.continue_on_failure != now.continue_on_failure:
            out.append(
                f"node {name!r} has continue_on_failure={now.continue_on_failure} in the "
                f"code but {was.continue_on_failure} in the record"
            )

    def edges(spec: pb.GraphSpec) -> dict[tuple[str, str], str]:
        return {(e.source, e.target): _EDGE.get(e.kind, "?") for e in spec.edges}

    old_edges, new_edges = edges(recorded), edges(code)

    def show(key: tuple[str, str], kind: str) -> str:
        return f"{key[0]} -[{kind}]-> {key[1] or 'END'}"

    for key in sorted(old_edges.keys() - new_edges.keys()):
        out.append(f"edge {show(key, old_edges[key])} is missing in the code")
    for key in sorted(new_edges.keys() - old_edges.keys()):
        out.append(f"edge {show(key, new_edges[key])} is new in the code")
    for key in sorted(old_edges.keys() & new_edges.keys()):
        if old_edges[key] != new_edges[key]:
            out.append(
                f"edge {key[0]} -> {key[1] or 'END'} is {new_edges[key]} in the code "
                f"but {old_edges[key]} in the record"
            )
    if not out and graph_digest(recorded) != graph_digest(code):
        out.append("the edge or node order differs")
    return out


def drift_message(recorded: pb.GraphSpec, code: pb.GraphSpec) -> str:
    """'' when the code matches the record, else a refusal naming every difference."""
    if graph_digest(recorded) == graph_digest(code):
        return ""
    return (
        f"the code's graph {code.graph_id}@{code.version} differs from the structure "
        f"this lifetime was recorded with: {'; '.join(graph_differences(recorded, code))} "
        "(give changed code a new version, or run the code the lifetime started with)"
    )
