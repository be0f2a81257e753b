"""The activation a condition sees: one execution plus its scopes' aggregates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sdk.pb import envelope_pb2

from ._aggregates import BUILTIN_METRICS, header_of, parse_counters, telemetry_of


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


def execution_view(
    envelope: envelope_pb2.ExecutionEnvelope, metrics: Iterable[str] = ()
) -> dict[str, Any]:
    """The ``execution`` root: the envelope's header and telemetry."""
    header = header_of(envelope)
    telemetry = telemetry_of(envelope)
    try:
        status = envelope_pb2.ExecutionStatus.Name(header.status)
    except ValueError:  # a status added to the schema after this code was built
        status = str(header.status)
    reported = {name: 0.0 for name in metrics if name not in BUILTIN_METRICS}
    reported.update(telemetry.metrics)
    return {
        "name": header.name,
        "kind": envelope.WhichOneof("execution") or "",
        "status": status.removeprefix("EXECUTION_STATUS_"),
        "attempt": header.attempt,
        "iteration": header.iteration,
        "tenant_id": header.tenant_id,
        "graph_id": header.graph_id,
        "graph_version": header.graph_version,
        "lifetime_id": header.lifetime_id,
        "tokens_in": telemetry.tokens_in,
        "tokens_out": telemetry.tokens_out,
        "tokens_used": telemetry.tokens_in + telemetry.tokens_out,
        "cost_usd": telemetry.cost_usd,
        "latency_ms": telemetry.latency_ms,
        "model": telemetry.model,
        "metrics": reported,
    }


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
    header = header_of(envelope)
    metrics = frozenset(metrics)
    nodes = frozenset(nodes) | {header.name}

    def aggregate(counters: Mapping[str, float]) -> dict[str, Any]:
        return parse_counters(counters, metrics=metrics, nodes=nodes, all_nodes=all_nodes)

    lifetime_view = aggregate(lifetime)
    lifetime_view["elapsed_s"] = float(elapsed_s)
    tenant_view = aggregate(tenant)
    tenant_view["day"] = aggregate(day)
    return EvaluationContext(
        tenant_id=header.tenant_id,
        graph_id=header.graph_id,
        node=header.name,
        activation={
            "execution": execution_view(envelope, metrics),
            "lifetime": lifetime_view,
            "tenant": tenant_view,
        },
    )
