"""AgentGraph: named Task and Plan nodes wired by NORMAL, PARALLEL, JOIN and FINAL edges.

A graph is immutable once built. Construction validates the whole wiring and
raises one GraphValidationError listing every problem found.

The edge rules (each refusal message repeats the rule it breaks):

- a Plan's edges go to Tasks: NORMAL (one choice among several) or PARALLEL
  (the Tasks it may run at once, each any number of times with ``Next.map``);
- a Task hands its result to exactly one next node: a Plan (NORMAL, or JOIN
  into the Plan that collects a fan-out) or another Task (NORMAL: the result
  becomes that Task's input, no Plan runs in between);
- a Task may also have a FINAL edge: with no other edge any result ends the
  lifetime; beside another edge, returning ``Finish(output)`` takes it;
- a Plan's FINAL edge is taken by returning ``Finish(output)``;
- any number of Plans (and Tasks) may lead to the same Task;
- Plans never feed Plans, and a Plan reached by JOIN is reached only by JOIN.
"""

from __future__ import annotations

import enum
import functools
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tickrail.sdk.choice import DEFAULT_MAX_FANOUT
from tickrail.sdk.drift import graph_digest
from tickrail.sdk.errors import GraphValidationError
from tickrail.sdk.node import NAME_PATTERN, Plan, Task
from tickrail.sdk.pb import envelope_pb2 as pb

VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


class EdgeKind(enum.Enum):
    NORMAL = pb.EDGE_KIND_NORMAL
    PARALLEL = pb.EDGE_KIND_PARALLEL
    JOIN = pb.EDGE_KIND_JOIN
    FINAL = pb.EDGE_KIND_FINAL


@dataclass(frozen=True, slots=True)
class Edge:
    """``source -> target``; FINAL edges have no target. ``where`` locates it in a file."""

    source: str
    target: str | None
    kind: EdgeKind = EdgeKind.NORMAL
    where: str = ""

    def __str__(self) -> str:
        arrow = f"{self.source} -[{self.kind.name}]-> {self.target or 'END'}"
        return f"{arrow} ({self.where})" if self.where else arrow


def normal(source: str, target: str) -> Edge:
    """The only way on from ``source`` (a Task), or one choice of a Plan."""
    return Edge(source, target, EdgeKind.NORMAL)


def parallel(source: str, targets: Sequence[str]) -> list[Edge]:
    """Plan ``source`` may fan out: each chosen target runs concurrently."""
    return [Edge(source, t, EdgeKind.PARALLEL) for t in targets]


def join(sources: Sequence[str], target: str) -> list[Edge]:
    """Plan ``target`` runs once every branch of the fan-out has reached it."""
    return [Edge(s, target, EdgeKind.JOIN) for s in sources]


def final(source: str) -> Edge:
    """Taking this edge completes the lifetime (after a Task, or a Plan's Finish)."""
    return Edge(source, None, EdgeKind.FINAL)


EdgeLike = Edge | Iterable[Edge]


class AgentGraph:
    """An immutable, validated graph template with a semantic version.

    ::

        graph = AgentGraph(
            "research", version="1.0.0", entry="planner",
            nodes=[Planner(), Search(), Summarize(), Answer()],
            edges=[parallel("planner", ["search", "summarize"]),
                   join(["search", "summarize"], "answer_plan"), ...],
        )

    ``max_iterations`` caps how often one node may run along one branch of a
    lifetime (the branches of a fan-out count apart; a JOIN carries on the
    most any branch reached) and
    ``max_steps`` how many nodes a lifetime may dispatch; crossing either
    aborts the lifetime (a runaway loop). ``max_fanout`` caps how many Task
    runs one Plan execution may start (``Next.map`` over a longer list is
    refused when the Plan returns it).
    """

    def __init__(
        self,
        name: str,
        *,
        entry: str,
        nodes: Sequence[Task | Plan | type[Task] | type[Plan]],
        edges: Iterable[EdgeLike],
        version: str = "0.1.0",
        max_iterations: int = 100,
        max_steps: int = 10_000,
        max_fanout: int = DEFAULT_MAX_FANOUT,
        source: str = "",
        locations: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.entry = entry
        self.max_iterations = max_iterations
        self.max_steps = max_steps
        self.max_fanout = max_fanout
        self.source = source
        #: node name -> "file:line", for messages about graphs loaded from files
        self.locations: Mapping[str, str] = dict(locations or {})
        problems: list[str] = []
        self._nodes: dict[str, Task | Plan] = {}
        for item in nodes:
            node = item() if isinstance(item, type) else item
            if not isinstance(node, Task | Plan):
                problems.append(f"{item!r} is not a Task or Plan")
                continue
            if node.name in self._nodes:
                problems.append(f"node name {node.name!r} is used twice")
                continue
            self._nodes[node.name] = node
        self.edges: tuple[Edge, ...] = tuple(_flatten(edges))
        problems.extend(validate(self))
        if problems:
            subject = f"graph {name!r}" + (f" ({source})" if source else "")
            raise GraphValidationError(subject, problems)
        self.spec = self._to_spec()
        self.digest = graph_digest(self.spec)

    @property
    def graph_id(self) -> str:
        return self.name

    @property
    def nodes(self) -> Mapping[str, Task | Plan]:
        return self._nodes

    def node(self, name: str) -> Task | Plan:
        return self._nodes[name]

    @functools.cached_property
    def routes(self) -> tuple[dict[str, dict[str, int]], frozenset[str]]:
        """node -> {target: edge kind} (FINAL edges aside), and the nodes with a FINAL edge."""
        out: dict[str, dict[str, int]] = {n: {} for n in self._nodes}
        finals: set[str] = set()
        for edge in self.edges:
            if edge.kind is EdgeKind.FINAL:
                finals.add(edge.source)
            elif edge.target is not None:
                out[edge.source][edge.target] = edge.kind.value
        return out, frozenset(finals)

    def _to_spec(self) -> pb.GraphSpec:
        return pb.GraphSpec(
            graph_id=self.name,
            version=self.version,
            entry=self.entry,
            max_iterations=self.max_iterations,
            max_steps=self.max_steps,
            max_fanout=self.max_fanout,
            nodes=[
                pb.GraphNodeSpec(
                    name=n.name,
                    kind=pb.NODE_KIND_TASK if isinstance(n, Task) else pb.NODE_KIND_PLAN,
                    impl=f"{type(n).__module__}:{type(n).__qualname__}",
                    continue_on_failure=isinstance(n, Task) and n.continue_on_failure,
                )
                for n in self._nodes.values()
            ],
            edges=[
                pb.GraphEdgeSpec(source=e.source, target=e.target or "", kind=e.kind.value)
                for e in self.edges
            ],
        )

    def to_mermaid(self, direction: str = "TD") -> str:
        """The graph as a Mermaid flowchart (Tasks boxes, Plans hexagons)."""
        from tickrail.sdk.diagram import to_mermaid

        return to_mermaid(self.spec, direction)

    def to_dot(self) -> str:
        """The graph as a Graphviz digraph."""
        from tickrail.sdk.diagram import to_dot

        return to_dot(self.spec)

    def __repr__(self) -> str:
        return f"<AgentGraph {self.name}@{self.version}: {len(self._nodes)} nodes>"


def _flatten(edges: Iterable[EdgeLike]) -> Iterable[Edge]:
    for item in edges:
        if isinstance(item, Edge):
            yield item
        else:
            yield from item


#: The caps travel as int32 in the GraphSpec.
INT32_MAX = 2**31 - 1


def validate(graph: AgentGraph) -> list[str]:
    """Every wiring problem of ``graph``, as readable sentences (rules: module docstring)."""
    problems: list[str] = []
    nodes = graph.nodes
    if not NAME_PATTERN.match(graph.name):
        problems.append(f"graph name {graph.name!r} is invalid (letters, digits, '_', '-')")
    if not VERSION_PATTERN.match(graph.version):
        problems.append(f"version {graph.version!r} is not a semantic version like 1.2.0")
    for cap in ("max_iterations", "max_steps"):
        value = getattr(graph, cap)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT32_MAX:
            problems.append(f"{cap} must be a whole number from 1 to {INT32_MAX}, got {value!r}")
    if not isinstance(graph.max_fanout, int) or not 1 <= graph.max_fanout <= 100_000:
        problems.append(f"max_fanout must be an integer from 1 to 100000, got {graph.max_fanout!r}")
    if graph.entry not in nodes:
        problems.append(f"entry node {graph.entry!r} is not defined")

    def is_task(name: str) -> bool:
        return isinstance(nodes[name], Task)

    outgoing: dict[str, list[Edge]] = {n: [] for n in nodes}
    incoming_kinds: dict[str, set[EdgeKind]] = {n: set() for n in nodes}
    seen: set[tuple[str, str | None]] = set()
    for edge in graph.edges:
        where = f" ({edge.where})" if edge.where else ""
        unknown = [n for n in (edge.source, edge.target) if n is not None and n not in nodes]
        for name in unknown:
            problems.append(f"edge {edge}: unknown node {name!r}")
        if unknown:
            continue
        if (edge.source, edge.target) in seen:
            problems.append(
                f"edge {edge} is declared twice (one edge per pair of nodes: its kind "
                f"says how it is taken){where}"
            )
            continue
        seen.add((edge.source, edge.target))
        outgoing[edge.source].append(edge)
        if edge.kind is EdgeKind.FINAL:
            if edge.target is not None:
                problems.append(f"FINAL edge from {edge.source!r} must not have a target{where}")
            continue
        if edge.target is None:
            problems.append(f"{edge.kind.name} edge from {edge.source!r} needs a target{where}")
            continue
        problem = _edge_problem(edge, is_task(edge.source), is_task(edge.target), nodes)
        if problem:
            problems.append(problem + where)
            continue
        incoming_kinds[edge.target].add(edge.kind)

    def at(name: str) -> str:
        where = graph.locations.get(name)
        return f" ({where})" if where else ""

    for name, node in nodes.items():
        outs = outgoing[name]
        if isinstance(node, Task):
            onward = [e for e in outs if e.kind is not EdgeKind.FINAL]
            if not outs:
                problems.append(
                    f"Task {name!r} has no outgoing edge: add an edge to a Plan or a Task, "
                    f"or a FINAL edge{at(name)}"
                )
            elif len(onward) > 1:
                targets = ", ".join(repr(e.target) for e in onward)
                problems.append(
                    f"Task {name!r} has {len(onward)} outgoing edges ({targets}); a Task "
                    "hands its result to exactly one next node (a Plan decides between "
                    f"several), plus at most a FINAL edge taken by returning Finish(...){at(name)}"
                )
        else:
            if not outs:
                problems.append(
                    f"Plan {name!r} has no outgoing edge: add edges to Tasks or a FINAL edge"
                    f"{at(name)}"
                )
            kinds = incoming_kinds[name]
            if EdgeKind.JOIN in kinds and len(kinds) > 1:
                problems.append(
                    f"Plan {name!r} mixes JOIN with other incoming edges; a joining Plan "
                    f"is reached only by JOIN edges{at(name)}"
                )

    if graph.entry in nodes:
        reachable = _reachable(graph.entry, outgoing)
        for name in nodes:
            if name not in reachable:
                problems.append(
                    f"node {name!r} is unreachable from the entry {graph.entry!r}{at(name)}"
                )
        finishing = _can_finish(nodes, outgoing)
        if not any(e.kind is EdgeKind.FINAL for e in graph.edges):
            problems.append("the graph has no FINAL edge, so no lifetime can complete")
        else:
            for name in nodes:
                if name in reachable and name not in finishing:
                    problems.append(f"node {name!r} has no path to a FINAL edge{at(name)}")
    return problems


def _edge_problem(
    edge: Edge, src_task: bool, dst_task: bool, nodes: Mapping[str, Task | Plan]
) -> str:
    """Why a non-FINAL edge breaks the edge rules, or ''."""
    src, dst, kind = edge.source, edge.target, edge.kind.name
    if not src_task and not dst_task:
        return f"edge {src!r} -> {dst!r} joins two Plans: a Plan's edges go to Tasks"
    if src_task and kind == "PARALLEL":
        return (
            f"PARALLEL edge from Task {src!r}: only a Plan fans out (a Task hands its "
            "result to one next node)"
        )
    if not src_task and kind == "JOIN":
        return (
            f"JOIN edge from Plan {src!r}: JOIN edges run from a Task into the Plan that "
            "collects the fan-out"
        )
    if src_task and dst_task:
        if kind != "NORMAL":
            return (
                f"{kind} edge {src!r} -> {dst!r} between two Tasks: a Task feeds another "
                "Task only over a NORMAL edge (its result becomes that Task's input); "
                "JOIN edges end at a Plan"
            )
        node = nodes[src]
        if isinstance(node, Task) and node.continue_on_failure:
            return (
                f"Task {src!r} has continue_on_failure but feeds Task {dst!r}: only a "
                "Plan can look at a failure and decide, so route it to a Plan"
            )
    return ""


def _reachable(entry: str, outgoing: Mapping[str, list[Edge]]) -> set[str]:
    seen, todo = {entry}, deque([entry])
    while todo:
        for edge in outgoing[todo.popleft()]:
            if edge.target is not None and edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return seen


def _can_finish(nodes: Mapping[str, object], outgoing: Mapping[str, list[Edge]]) -> set[str]:
    incoming: dict[str, list[str]] = {n: [] for n in nodes}
    for source, edges in outgoing.items():
        for edge in edges:
            if edge.target is not None:
                incoming[edge.target].append(source)
    done = {n for n, edges in outgoing.items() if any(e.kind is EdgeKind.FINAL for e in edges)}
    todo = deque(done)
    while todo:
        for source in incoming[todo.popleft()]:
            if source not in done:
                done.add(source)
                todo.append(source)
    return done
