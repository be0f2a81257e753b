"""tickrail: event-sourced control and data planes for LLM agent graphs.

Everything a graph author needs is importable from here::

    from tickrail import AgentGraph, Finish, Next, Plan, Task, final, join, parallel

Run a graph with ``tickrail run my_graph.py``. The repository's folders are
subpackages: ``tickrail.sdk`` (what this module re-exports), ``tickrail.adapters``
(bus, store, blob and KV drivers) and ``tickrail.services`` (the roles, the CLI,
the API); only this module's ``__all__`` is the stable public surface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickrail.sdk import (
    AdapterError,
    AgentGraph,
    ConfigurationError,
    DefinitionError,
    Edge,
    EdgeKind,
    EnvelopeError,
    ExecutionError,
    Finish,
    GraphValidationError,
    Next,
    NodeContext,
    Plan,
    PlanContext,
    PolicyError,
    Retry,
    RoutingError,
    Send,
    Task,
    TaskContext,
    TickrailError,
    Upstream,
    Usage,
    final,
    join,
    load_graph,
    normal,
    parallel,
)

if TYPE_CHECKING:
    from tickrail.sdk.client import TickrailClient

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The client needs the grpc extra; import it on first use so `import tickrail` never does.
    if name == "TickrailClient":
        from tickrail.sdk.client import TickrailClient

        return TickrailClient
    raise AttributeError(f"module 'tickrail' has no attribute {name!r}")


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
