"""Prometheus metrics of every tickrail process (prometheus-client).

Every series has HELP text and a bounded label set: roles, node kinds and
names, statuses, guardrail rules and actions, dependency names and reason
codes, never a lifetime, execution or tenant id. ``render()`` is what a role
process serves on ``/metrics``; it includes prometheus-client's process and
Python runtime collectors (``process_*``, ``python_*``).

Series (docs/deploy.md lists them with PromQL and alert rules; a test compares
that list with a real scrape):

- ``tickrail_node_duration_seconds{graph,node,kind}`` histogram: one attempt at a node.
- ``tickrail_executions_total{graph,node,kind,status}``: attempts, by final status.
- ``tickrail_planner_loop_seconds`` histogram: an envelope published by an
  executor until the control plane has dispatched the inputs it caused.
- ``tickrail_batch_duration_seconds{role}`` histogram: one consumed batch, handled.
- ``tickrail_messages_processed_total{role}``, ``tickrail_errors_total{role}``.
- ``tickrail_consumer_lag{role}`` gauge: messages behind the head, where the bus knows.
- ``tickrail_guardrail_verdicts_total{action,rule}``.
- ``tickrail_dead_lettered_total{topic}``: messages sent to a dead-letter
  topic, by the kind of topic they came from (executions, persisted, ...).
- ``tickrail_refused_total{reason}``: messages refused (not routed), by a short reason code.
- ``tickrail_retries_total{dependency}``: retried calls to a dependency (kafka,
  postgres, redis, s3, sqlite), counted by services/retry.py.
- ``tickrail_dependency_up{dependency}`` gauge: 0 while a dependency is being retried.

Other modules count through the module-level metrics, always with a fixed,
short label value (never an id or a message text)::

    from tickrail.services import metrics
    metrics.retries.labels(dependency="postgres").inc()
    metrics.refused.labels(reason="bad-token").inc()
    metrics.dead_lettered.labels(topic="executions").inc()
    metrics.guardrail_verdicts.labels(action="PAUSE_LIFETIME", rule="budget").inc()

A role keeps a ``Metrics`` object, a thin view of these series with its own
``role`` label.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tickrail.adapters import ReportsLag, offers
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services._fast_series import FastCounter, FastHistogram

__all__ = [
    "CONTENT_TYPE_LATEST",
    "Metrics",
    "batch_duration",
    "consumer_lag",
    "dead_lettered",
    "dependency_up",
    "errors",
    "executions",
    "guardrail_verdicts",
    "messages_processed",
    "node_duration",
    "planner_loop",
    "refused",
    "render",
    "retries",
]

# ``*_created`` gauges double the series and no query here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Model calls take seconds to minutes; the buckets reach ten minutes.
NODE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# The platform's own loop: milliseconds when healthy, seconds when backed up.
LOOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# The series a step observes are the fast kind (see _fast_series): same exposition.
node_duration = FastHistogram(
    "tickrail_node_duration_seconds",
    "Time one attempt at a node (Task or Plan) took, user code included.",
    ["graph", "node", "kind"],
    buckets=NODE_BUCKETS,
)
executions = FastCounter(
    "tickrail_executions",
    "Node attempts run by executors, by the status they ended with.",
    ["graph", "node", "kind", "status"],
)
planner_loop = FastHistogram(
    "tickrail_planner_loop_seconds",
    "From an execution envelope published by an executor until the control plane "
    "has dispatched the next inputs it caused.",
    buckets=LOOP_BUCKETS,
)
batch_duration = FastHistogram(
    "tickrail_batch_duration_seconds",
    "Time one consumed batch took to handle (persist or decide, then publish).",
    ["role"],
    buckets=LOOP_BUCKETS,
)
messages_processed = FastCounter(
    "tickrail_messages_processed", "Messages a role consumed and handled.", ["role"]
)
errors = Counter(
    "tickrail_errors",
    "Messages a role could not complete (left uncommitted for redelivery).",
    ["role"],
)
consumer_lag = Gauge(
    "tickrail_consumer_lag",
    "Messages between a role's committed position and the head of its topics "
    "(0 where the bus cannot tell).",
    ["role"],
)
guardrail_verdicts = Counter(
    "tickrail_guardrail_verdicts",
    "Guardrail verdicts recorded by the control plane, by action and rule.",
    ["action", "rule"],
)
dead_lettered = Counter(
    "tickrail_dead_lettered",
    "Messages sent to a dead-letter topic, by the kind of topic they came from.",
    ["topic"],
)
refused = Counter(
    "tickrail_refused",
    "Messages refused instead of processed, by reason code.",
    ["reason"],
)
retries = Counter(
    "tickrail_retries",
    "Calls to a dependency (kafka, postgres, redis, s3, sqlite) that failed and were retried.",
    ["dependency"],
)
dependency_up = Gauge(
    "tickrail_dependency_up",
    "0 while this process retries calls to the dependency, 1 once it answers again.",
    ["dependency"],
)


def render() -> bytes:
    """Every series of this process in the Prometheus text format."""
    return generate_latest(REGISTRY)


def status_name(status: int) -> str:
    """``SUCCEEDED`` for EXECUTION_STATUS_SUCCEEDED: short and bounded."""
    try:
        return pb.ExecutionStatus.Name(status).removeprefix("EXECUTION_STATUS_")
    except ValueError:
        return "UNKNOWN"


class Metrics:
    """One role's view of the series above (its ``role`` label)."""

    clock = staticmethod(time.perf_counter)

    def __init__(self, role: str) -> None:
        self.role = role
        # Series exist from the first scrape, so rate() and alerts see a zero, not a gap.
        self._processed = messages_processed.labels(role=role)
        self._errors = errors.labels(role=role)
        self._lag = consumer_lag.labels(role=role)
        self._batch = batch_duration.labels(role=role)
        self._executions: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._counters: dict[str, Any] = {
            "messages_processed_total": self._processed,
            "errors_total": self._errors,
            # Names of the hand-written exporter, kept so callers need not change.
            "envelopes_refused_total": refused.labels(reason="envelope"),
        }

    def inc(self, name: str, amount: float = 1.0) -> None:
        """Count one of this role's counters by its old name (see ``COUNTERS``);
        new code uses the module-level series with their labels directly."""
        try:
            counter = self._counters[name]
        except KeyError:
            known = ", ".join(sorted(self._counters))
            raise KeyError(
                f"no tickrail counter {name!r} (known: {known}; or use the series in "
                "tickrail.services.metrics, e.g. metrics.refused.labels(reason=...))"
            ) from None
        counter.inc(amount)

    def report_lag(self, consumer: object) -> None:
        """Record the consumer's lag, where the bus can tell it (ReportsLag)."""
        if offers(consumer, ReportsLag):  # type: ignore[type-abstract]
            self._lag.set(float(consumer.lag()))

    def observe_batch(self, messages: int, rejected: int, started: float) -> None:
        """A handled batch (``rejected`` ones are counted where they are dead-lettered)."""
        self._processed.inc(messages)
        self._batch.observe(self.clock() - started)

    def declare_node(self, graph: str, node: str, kind: str) -> None:
        """Make a node's duration series exist before it first runs (rate() sees 0)."""
        node_duration.labels(graph=graph, node=node, kind=kind)

    def observe_execution(
        self, graph: str, node: str, kind: str, status: int, seconds: float
    ) -> None:
        key = (graph, node, kind, status)
        children = self._executions.get(key)
        if children is None:  # labels() takes a lock and builds a key: once per series
            children = self._executions[key] = (
                node_duration.labels(graph=graph, node=node, kind=kind),
                executions.labels(graph=graph, node=node, kind=kind, status=status_name(status)),
            )
        children[0].observe(seconds)
        children[1].inc()
