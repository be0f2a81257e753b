"""Finding a lifetime's graph code again: the label a start records, and loading it."""

from __future__ import annotations

import os

from tickrail.sdk.drift import drift_message
from tickrail.sdk.errors import ConfigurationError
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.loading import load_graph
from tickrail.sdk.pb import envelope_pb2 as pb

#: The label under which a start records how to load its graph again.
GRAPH_LABEL = "tickrail.graph"


def graph_label(target: str) -> str:
    """How to find the graph again (for resume and recovery): absolute path for files."""
    if target.endswith((".py", ".yaml", ".yml")):
        return os.path.abspath(target)
    return target


def load_recorded_graph(started: pb.LifetimeStarted, override: str | None) -> AgentGraph:
    """The graph a lifetime was started with (or ``override``), checked to be the
    same graph id, version and structure: running a lifetime on other code is
    refused, naming what changed."""
    target = override or started.labels.get(GRAPH_LABEL)
    if not target:
        raise ConfigurationError("the lifetime does not record its graph; pass --graph")
    graph = load_graph(target)
    if (graph.graph_id, graph.version) != (started.graph.graph_id, started.graph.version):
        raise ConfigurationError(
            f"{target} is {graph.graph_id}@{graph.version}, but the lifetime runs "
            f"{started.graph.graph_id}@{started.graph.version}"
        )
    drift = drift_message(started.graph, graph.spec)
    if drift:
        raise ConfigurationError(f"{target}: {drift}")
    return graph


def resolve_from_labels(spec: pb.GraphSpec, labels: dict[str, str]) -> AgentGraph | None:
    """The graph a client names in its start labels (the embedded owner loads it)."""
    target = labels.get(GRAPH_LABEL)
    if not target:
        return None
    started = pb.LifetimeStarted(graph=spec, labels=labels)
    return load_recorded_graph(started, None)
