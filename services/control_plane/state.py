"""A lifetime's state: a projection of its log, kept in memory by the control plane."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from tickrail.sdk.choice import DEFAULT_MAX_FANOUT
from tickrail.sdk.drift import graph_digest
from tickrail.sdk.pb import envelope_pb2 as pb

FINAL_STATUSES = frozenset(
    {pb.EXECUTION_STATUS_SUCCEEDED, pb.EXECUTION_STATUS_FAILED, pb.EXECUTION_STATUS_TIMED_OUT}
)
TERMINAL_LIFETIME = frozenset(
    {pb.LIFETIME_STATUS_COMPLETED, pb.LIFETIME_STATUS_FAILED, pb.LIFETIME_STATUS_ABORTED}
)


@dataclass(frozen=True, slots=True)
class GraphIndex:
    """Lookup tables built once per graph version from its GraphSpec."""

    spec: pb.GraphSpec
    kinds: dict[str, pb.NodeKind]
    continue_on_failure: frozenset[str]
    # node -> {target: edge kind}, in declaration order (FINAL edges are in ``finals``)
    out: dict[str, dict[str, pb.EdgeKind]]
    finals: frozenset[str]
    digest: str
    max_fanout: int
    # The spec's scalars as Python values (read per step; a protobuf read builds a new object)
    graph_id: str
    version: str
    max_iterations: int
    max_steps: int


def index_graph(spec: pb.GraphSpec) -> GraphIndex:
    return _index(spec.SerializeToString(deterministic=True))


@lru_cache(maxsize=256)
def _index(raw: bytes) -> GraphIndex:
    spec = pb.GraphSpec.FromString(raw)
    out: dict[str, dict[str, pb.EdgeKind]] = {n.name: {} for n in spec.nodes}
    finals: set[str] = set()
    for edge in spec.edges:
        if edge.kind == pb.EDGE_KIND_FINAL:
            finals.add(edge.source)
        else:
            out[edge.source][edge.target] = edge.kind
    return GraphIndex(
        spec=spec,
        kinds={n.name: n.kind for n in spec.nodes},
        continue_on_failure=frozenset(n.name for n in spec.nodes if n.continue_on_failure),
        out=out,
        finals=frozenset(finals),
        digest=graph_digest(spec),
        max_fanout=spec.max_fanout or DEFAULT_MAX_FANOUT,
        graph_id=spec.graph_id,
        version=spec.version,
        max_iterations=spec.max_iterations,
        max_steps=spec.max_steps,
    )


#: A branch's place in nested fan-outs: (fan-out id, index) per frame, outermost first.
BranchPath = tuple[tuple[str, int], ...]


@dataclass(slots=True)
class HeldSend:
    """A Task run of a Plan's choice that waits for other runs of it (``after``)."""

    send: pb.TaskSend
    branch: list[pb.BranchFrame]
    plan: str
    plan_exec_id: str


@dataclass(slots=True)
class Dag:
    """One Plan execution's sends while some still wait for their dependencies."""

    #: input id of a dispatched send -> its send id
    inputs: dict[str, str] = field(default_factory=dict)
    #: send id -> the result of its run, once it finished
    done: dict[str, pb.UpstreamResult] = field(default_factory=dict)
    #: branch index -> a send not yet dispatched
    held: dict[int, HeldSend] = field(default_factory=dict)


@dataclass(slots=True)
class LifetimeState:
    lifetime_id: str
    tenant_id: str
    graph: GraphIndex
    started_at: float
    input: pb.Payload
    status: int = pb.LIFETIME_STATUS_RUNNING
    next_step: int = 1
    steps: int = 0
    #: (node, branch path) -> iterations of the node in that branch (see routing)
    iterations: dict[tuple[str, BranchPath], int] = field(default_factory=dict)
    #: executions the control plane has judged (a redelivered ref is ignored)
    seen: set[str] = field(default_factory=set)
    #: dispatched inputs whose final execution has not been routed yet
    pending: dict[str, pb.NodeInput] = field(default_factory=dict)
    #: (fanout id, join plan) -> branch index -> arrived result
    joins: dict[tuple[str, str], dict[int, pb.UpstreamResult]] = field(default_factory=dict)
    #: final executions held while PAUSED, routed on resume
    deferred: list[pb.ExecutionEnvelope] = field(default_factory=list)
    #: paused by a command or a guardrail: routing stops until resumed
    held: bool = False
    #: WAITING exec id -> the input it ran; the branch continues when answered
    waiting: dict[str, pb.NodeInput] = field(default_factory=dict)
    #: fan-out id -> the sends of that Plan execution still waiting for others
    dags: dict[str, Dag] = field(default_factory=dict)
    output: pb.Payload | None = None
    reason: str = ""

    @property
    def graph_id(self) -> str:
        return self.graph.graph_id

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_LIFETIME

    def sync_status(self) -> None:
        """PAUSED while held or while any branch waits for a person, else RUNNING."""
        if not self.terminal:
            paused = self.held or bool(self.waiting)
            self.status = pb.LIFETIME_STATUS_PAUSED if paused else pb.LIFETIME_STATUS_RUNNING
