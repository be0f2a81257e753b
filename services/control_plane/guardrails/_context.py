"""The activation a condition sees: one execution plus its scopes' aggregates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tickrail.sdk.pb import envelope_pb2

from ._aggregates import BUILTIN_METRICS, parse_counters
from ._leaves import EXECUTION_FIELDS, Inputs

ROOTS = ("execution", "lifetime", "tenant")


@dataclass(frozen=True)
class EvaluationContext:
    """Everything ``PolicySet.evaluate`` needs: which rules apply, and their inputs.

    ``activation`` maps ``execution``, ``lifetime`` and ``tenant`` to plain
    dicts of numbers and strings (see docs/policies.md for the shape).
    """

    tenant_id: str
    graph_id: str
    node: str
    activation: Mapping[str, Any]


def _execution_view(inputs: Inputs, metrics: frozenset[str]) -> dict[str, Any]:
    view = {name: get(inputs) for name, get in EXECUTION_FIELDS.items()}
    reported = {name: 0.0 for name in metrics if name not in BUILTIN_METRICS}
    reported.update(inputs.telemetry.metrics)
    view["metrics"] = reported
    return view


def build_context(
    envelope: envelope_pb2.ExecutionEnvelope,
    *,
    lifetime: Mapping[str, float],
    tenant: Mapping[str, float],
    day: Mapping[str, float],
    elapsed_s: float,
    metrics: Iterable[str] = (),
    nodes: Iterable[str] = (),
    all_nodes: bool = True,
) -> EvaluationContext:
    """Assemble the activation from an envelope and its scopes' counter hashes.

    ``metrics``/``nodes`` are the names the policy set writes literally (they
    read 0 until reported); the execution's own node is always included.
    """
    inputs = Inputs(envelope, (lifetime, tenant, day), elapsed_s)
    return EvaluationContext(
        tenant_id=inputs.header.tenant_id,
        graph_id=inputs.header.graph_id,
        node=inputs.header.name,
        activation=root_views(
            inputs, ROOTS, metrics=frozenset(metrics), nodes=nodes, all_nodes=all_nodes
        ),
    )


def root_views(
    inputs: Inputs,
    roots: Iterable[str],
    *,
    metrics: frozenset[str],
    nodes: Iterable[str],
    all_nodes: bool,
) -> dict[str, Any]:
    """The full activation's ``roots`` (``execution``, ``lifetime``, ``tenant``)."""
    node_names = frozenset(nodes) | {inputs.header.name}
    lifetime, tenant, day = inputs.scopes

    def aggregate(counters: Mapping[str, float]) -> dict[str, Any]:
        return parse_counters(counters, metrics=metrics, nodes=node_names, all_nodes=all_nodes)

    views: dict[str, Any] = {}
    for root in roots:
        if root == "execution":
            views[root] = _execution_view(inputs, metrics)
        elif root == "lifetime":
            views[root] = aggregate(lifetime)
            views[root]["elapsed_s"] = float(inputs.elapsed_s)
        elif root == "tenant":
            views[root] = aggregate(tenant)
            views[root]["day"] = aggregate(day)
    return views
