"""Check what arrives over the wire before anything is published.

A graph arrives as a ``GraphSpec`` (structure only, no code). It is checked
with the very rules ``AgentGraph`` applies when a graph is built in Python, by
standing a placeholder Task or Plan in for each named node, so a graph that
would be refused locally is refused here with the same sentences.
"""

from __future__ import annotations

import re
from typing import Any

from tickrail.sdk._payload import JSON, loads_json
from tickrail.sdk.choice import DEFAULT_MAX_FANOUT
from tickrail.sdk.errors import DefinitionError
from tickrail.sdk.errors import InvalidArgumentError as InvalidArgument
from tickrail.sdk.graph import AgentGraph, Edge, EdgeKind
from tickrail.sdk.node import NAME_PATTERN, Plan, Task
from tickrail.sdk.pb import envelope_pb2 as pb

#: Lifetime ids the API accepts from callers: safe in topic keys, blob keys and URLs.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class _SpecTask(Task):
    """Stands in for a Task known only by name (never run)."""

    name = "spec_task"

    def __init__(self, name: str, continue_on_failure: bool) -> None:
        # ``name`` and ``continue_on_failure`` are class attributes on real Tasks;
        # a placeholder per node sets them on the instance instead.
        self.name = name  # type: ignore[misc]
        self.continue_on_failure = continue_on_failure  # type: ignore[misc]

    async def run(self, ctx: Any) -> Any:
        raise NotImplementedError("a placeholder for validation only")


class _SpecPlan(Plan):
    """Stands in for a Plan known only by name (never run)."""

    name = "spec_plan"

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]

    async def plan(self, ctx: Any) -> Any:
        raise NotImplementedError("a placeholder for validation only")


def check_graph_spec(spec: pb.GraphSpec, field: str = "graph") -> None:
    """Raise InvalidArgument listing every problem of ``spec``."""
    problems: list[str] = []
    if not spec.graph_id:
        problems.append("graph_id is empty")
    nodes: list[Task | Plan] = []
    for node in spec.nodes:
        if not NAME_PATTERN.match(node.name):
            problems.append(f"node name {node.name!r} is invalid (letters, digits, '_', '-')")
        if node.kind == pb.NODE_KIND_TASK:
            nodes.append(_SpecTask(node.name, node.continue_on_failure))
        elif node.kind == pb.NODE_KIND_PLAN:
            nodes.append(_SpecPlan(node.name))
        else:
            problems.append(f"node {node.name!r} has no kind (TASK or PLAN)")
    edges: list[Edge] = []
    for edge in spec.edges:
        try:
            kind = EdgeKind(edge.kind)
        except ValueError:
            problems.append(f"edge {edge.source!r} -> {edge.target!r} has no kind")
            continue
        edges.append(Edge(edge.source, edge.target or None, kind))
    if not problems:
        try:
            AgentGraph(
                spec.graph_id,
                version=spec.version,
                entry=spec.entry,
                nodes=nodes,
                edges=edges,
                max_iterations=spec.max_iterations,
                max_steps=spec.max_steps,
                max_fanout=spec.max_fanout or DEFAULT_MAX_FANOUT,
            )
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidArgument(field, "; ".join(problems))


def same_structure(a: pb.GraphSpec, b: pb.GraphSpec) -> bool:
    """Equal graphs apart from ``impl`` (module paths differ between machines)."""
    strip_a, strip_b = pb.GraphSpec(), pb.GraphSpec()
    strip_a.CopyFrom(a)
    strip_b.CopyFrom(b)
    for spec in (strip_a, strip_b):
        for node in spec.nodes:
            node.impl = ""
    return strip_a == strip_b


def check_payload(payload: pb.Payload, field: str, *, limit: int) -> None:
    """Accept inline bytes only, decodable as their content type and at most ``limit`` bytes.

    A caller-supplied BlobRef is refused: the server would read whatever URI it
    names with its own credentials, including another tenant's blobs.
    """
    body = payload.WhichOneof("body")
    if body is None:
        return
    if body == "blob":
        raise InvalidArgument(field, "blob references are not accepted; send the bytes inline")
    data = payload.inline
    if len(data) > limit:
        raise InvalidArgument(
            field, f"{len(data):,} bytes is more than this server accepts inline ({limit:,})"
        )
    if not payload.content_type:
        raise InvalidArgument(field, "content_type is empty")
    if payload.content_type == JSON:
        try:
            loads_json(data)  # standard JSON only: no NaN or Infinity in the record
        except ValueError as exc:
            raise InvalidArgument(
                field, f"content_type is {JSON} but the body is not JSON"
            ) from exc
    elif payload.content_type.startswith("text/"):
        try:
            data.decode()
        except UnicodeDecodeError as exc:
            raise InvalidArgument(field, "a text/ body must be UTF-8") from exc


def require(value: str, field: str) -> str:
    """A non-empty field (ids of existing records are looked up, not pattern-checked)."""
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > 256:
        raise InvalidArgument(field, "is longer than 256 characters")
    return value


def check_new_id(value: str, field: str) -> str:
    """An id a caller chooses for a new lifetime: it ends up in topic keys and blob keys."""
    if not ID_PATTERN.match(value):
        raise InvalidArgument(
            field, f"{value[:80]!r} is not a valid id (letters, digits, '_', '.', '-'; <= 128)"
        )
    return value
