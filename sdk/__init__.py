"""tickrail SDK: write Tasks and Plans, wire them into an AgentGraph.

Users import these names from ``tickrail`` itself, which re-exports exactly
this ``__all__`` (the one curated list, guarded by tests/unit/test_contracts.py)::

    from tickrail import AgentGraph, Finish, Next, Plan, Task, final, join, parallel

Run a graph with ``tickrail run my_graph.py``.
"""

# After the names above: the client module imports from this package (gRPC is core).
from tickrail.sdk.client import TickrailClient
from tickrail.sdk.context import NodeContext, PlanContext, TaskContext, Upstream, Usage
from tickrail.sdk.decision import Finish, Next, Send
from tickrail.sdk.errors import (
    AdapterError,
    ConfigurationError,
    DefinitionError,
    EnvelopeError,
    ExecutionError,
    GraphValidationError,
    PolicyError,
    RoutingError,
    TickrailError,
)
from tickrail.sdk.graph import AgentGraph, Edge, EdgeKind, final, join, normal, parallel
from tickrail.sdk.loading import load_graph
from tickrail.sdk.node import Plan, Retry, Task

__all__ = [
    "AdapterError",
    "AgentGraph",
    "ConfigurationError",
    "DefinitionError",
    "Edge",
    "EdgeKind",
    "EnvelopeError",
    "ExecutionError",
    "Finish",
    "GraphValidationError",
    "Next",
    "NodeContext",
    "Plan",
    "PlanContext",
    "PolicyError",
    "Retry",
    "RoutingError",
    "Send",
    "Task",
    "TaskContext",
    "TickrailClient",
    "TickrailError",
    "Upstream",
    "Usage",
    "final",
    "join",
    "load_graph",
    "normal",
    "parallel",
]
