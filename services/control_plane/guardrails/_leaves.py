"""Leaves: the scalar values a condition reads through a path known at load time.

Converting the activation into CEL values is what an evaluation costs: about
1 µs per map entry and 1-3 µs per map, so the whole activation of a busy
lifetime and tenant costs hundreds of µs, while a top-level variable costs
0.3-1.5 µs. Most conditions only read a few leaves by literal paths
(``lifetime.sum.tokens_used``, ``lifetime.nodes[execution.name].count``), so
the loader rewrites each such path into a top-level variable (``Leaf.var``)
and an execution computes just those values straight from the envelope and
the counter hashes. A leaf's value is always the value the full activation
holds at its path (``build_context`` in ``_context.py``), so the rewritten
condition evaluates exactly like the written one.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tickrail.sdk._envelope import execution_of, kind_of
from tickrail.sdk.pb import envelope_pb2

from ._aggregates import BUILTIN_METRICS, INT_METRICS, node_prefix

#: Flat variables start with this; a condition containing it is not rewritten.
VAR_PREFIX = "_tr_"
#: The aggregate sources, in the order of ``Inputs.scopes``.
AGGREGATES = ("lifetime", "tenant", "day")

Part = str | tuple[str, str]


class Inputs:
    """One execution's raw inputs: the envelope and its scopes' counter hashes."""

    __slots__ = ("elapsed_s", "envelope", "header", "scopes", "telemetry")

    def __init__(
        self,
        envelope: envelope_pb2.ExecutionEnvelope,
        scopes: tuple[Mapping[str, float], Mapping[str, float], Mapping[str, float]],
        elapsed_s: float,
    ) -> None:
        execution = execution_of(envelope)
        self.envelope = envelope
        self.header = execution.header
        self.telemetry = execution.telemetry
        self.scopes = scopes
        self.elapsed_s = elapsed_s


@functools.lru_cache(maxsize=64)
def status_name(status: int) -> str:
    try:
        name = envelope_pb2.ExecutionStatus.Name(status)
    except ValueError:  # a status added to the schema after this code was built
        name = str(status)
    return name.removeprefix("EXECUTION_STATUS_")


Getter = Callable[[Inputs], Any]

#: The scalar fields of the ``execution`` root (``metrics`` is its only map).
EXECUTION_FIELDS: Mapping[str, Getter] = {
    "name": lambda i: i.header.name,
    "kind": lambda i: kind_of(i.envelope),
    "status": lambda i: status_name(i.header.status),
    "attempt": lambda i: i.header.attempt,
    "iteration": lambda i: i.header.iteration,
    "tenant_id": lambda i: i.header.tenant_id,
    "graph_id": lambda i: i.header.graph_id,
    "graph_version": lambda i: i.header.graph_version,
    "lifetime_id": lambda i: i.header.lifetime_id,
    "tokens_in": lambda i: i.telemetry.tokens_in,
    "tokens_out": lambda i: i.telemetry.tokens_out,
    "tokens_used": lambda i: i.telemetry.tokens_in + i.telemetry.tokens_out,
    "cost_usd": lambda i: i.telemetry.cost_usd,
    "latency_ms": lambda i: i.telemetry.latency_ms,
    "model": lambda i: i.telemetry.model,
    # Fan-out: how many Task runs a Plan execution dispatches (0 for a Finish
    # or a Task), and where a run sits in the fan-out that started it.
    "fanout": lambda i: _fanout(i.envelope),
    "branch_index": lambda i: i.header.branch[-1].index if i.header.branch else -1,
    "branch_width": lambda i: i.header.branch[-1].width if i.header.branch else 0,
    "from_node": lambda i: i.header.from_node,
}


def _fanout(envelope: envelope_pb2.ExecutionEnvelope) -> int:
    if kind_of(envelope) != "plan":
        return 0
    result = envelope.plan.result
    return len(result.sends) or len(result.next_task_names)


@dataclass(frozen=True)
class Leaf:
    """A scalar at a path every activation holds.

    ``source`` is ``execution`` (a field), ``metric`` (``execution.metrics[metric]``),
    ``elapsed`` (``lifetime.elapsed_s``) or an aggregate (``lifetime``, ``tenant``,
    ``day``) with ``kind`` ``count``, ``sum`` or ``max``, optionally of ``node``
    or of the execution's own node.
    """

    source: str
    kind: str = ""
    metric: str = ""
    node: str | None = None
    own_node: bool = False

    @functools.cached_property
    def var(self) -> str:
        """The top-level variable the rewritten condition reads; stable across loads."""
        key = repr((self.source, self.kind, self.metric, self.node, self.own_node))
        return VAR_PREFIX + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()

    @functools.cached_property
    def getter(self) -> Getter:
        """Computes the leaf from an execution's Inputs."""
        if self.source == "execution":
            return EXECUTION_FIELDS[self.kind]
        if self.source == "metric":
            metric = self.metric

            def reported(i: Inputs) -> Any:
                # Literal names read 0.0 until reported (docs: "Missing keys read 0").
                return i.telemetry.metrics.get(metric, 0.0)

            return reported
        if self.source == "elapsed":
            return lambda i: float(i.elapsed_s)
        return _aggregate_getter(self)

    def walk(self, activation: Mapping[str, Any]) -> Any:
        """The leaf read out of a full activation; raises if it is not there."""
        value: Any = activation
        for step in self.steps:
            if step is None:  # nodes[execution.name]
                step = activation["execution"]["name"]
            value = value[step]
        return value

    @functools.cached_property
    def steps(self) -> tuple[str | None, ...]:
        """The leaf's path in the activation; ``None`` stands for ``execution.name``."""
        if self.source == "execution":
            return ("execution", self.kind)
        if self.source == "metric":
            return ("execution", "metrics", self.metric)
        if self.source == "elapsed":
            return ("lifetime", "elapsed_s")
        steps: tuple[str | None, ...] = (
            ("tenant", "day") if self.source == "day" else (self.source,)
        )
        if self.own_node:
            steps += ("nodes", None)
        elif self.node is not None:
            steps += ("nodes", self.node)
        return steps + ((self.kind,) if self.kind == "count" else (self.kind, self.metric))


def _aggregate_getter(leaf: Leaf) -> Getter:
    """``parse_counters`` for one field: int for counts and token metrics, 0 if absent."""
    scope = AGGREGATES.index(leaf.source)
    as_int = leaf.kind == "count" or leaf.metric in INT_METRICS
    zero: int | float = 0 if as_int else 0.0
    suffix = "count" if leaf.kind == "count" else f"{leaf.kind}/{quote(leaf.metric, safe='')}"
    if leaf.own_node:

        def own(i: Inputs) -> Any:
            value = i.scopes[scope].get(node_prefix(i.header.name) + suffix)
            if value is None:
                return zero
            return int(value) if as_int else value

        return own
    field = suffix if leaf.node is None else node_prefix(leaf.node) + suffix

    def literal(i: Inputs) -> Any:
        value = i.scopes[scope].get(field)
        if value is None:
            return zero
        return int(value) if as_int else value

    return literal


def resolve(parts: Sequence[Part]) -> Leaf | None:
    """The leaf a path reaches, or None if it ends at a map, depends on run-time
    keys (other than ``nodes[execution.name]``) or may be absent."""
    if not parts or any(isinstance(p, str) and "\\" in p for p in parts):
        return None  # an escape sequence: the key as written is not the key CEL reads
    root, rest = parts[0], list(parts[1:])
    if root == "execution":
        if len(rest) == 1 and isinstance(rest[0], str) and rest[0] in EXECUTION_FIELDS:
            return Leaf("execution", rest[0])
        if (
            len(rest) == 2
            and rest[0] == "metrics"
            and isinstance(rest[1], str)
            # Unreported built-in names are absent from execution.metrics, not 0.
            and rest[1] not in BUILTIN_METRICS
        ):
            return Leaf("metric", metric=rest[1])
        return None
    if root == "lifetime":
        if rest == ["elapsed_s"]:
            return Leaf("elapsed")
        return _aggregate("lifetime", rest)
    if root == "tenant":
        if rest[:1] == ["day"]:
            return _aggregate("day", rest[1:])
        return _aggregate("tenant", rest)
    return None


def _aggregate(source: str, rest: list[Part]) -> Leaf | None:
    node: str | None = None
    own_node = False
    if rest[:1] == ["nodes"]:
        if len(rest) < 2:
            return None
        key = rest[1]
        if key == ("dynamic", "execution.name"):
            own_node = True
        elif isinstance(key, str):
            node = key  # written literally, so the activation pre-fills it
        else:
            return None
        rest = rest[2:]
    if rest == ["count"]:
        return Leaf(source, "count", node=node, own_node=own_node)
    if len(rest) == 2 and rest[0] in ("sum", "max") and isinstance(rest[1], str):
        assert isinstance(rest[0], str)
        return Leaf(source, rest[0], metric=rest[1], node=node, own_node=own_node)
    return None
