"""tickrail SDK: write Tasks and Plans, wire them into an AgentGraph.

::

    from tickrail.sdk import AgentGraph, Finish, Next, Plan, Task, final, join, parallel

Run a graph with ``tickrail run my_graph.py``.
"""

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


def __getattr__(name: str) -> object:
    # The client needs the grpc extra; import it on first use so `import sdk` never does.
    if name == "TickrailClient":
        from tickrail.sdk.client import TickrailClient

        return TickrailClient
    raise AttributeError(f"module 'sdk' has no attribute {name!r}")


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
