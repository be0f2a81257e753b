"""Cumulative usage per lifetime and per tenant, kept as KV counter hashes.

Key layout (``prefix`` defaults to ``guardrails``)::

    {prefix}:lifetime:{lifetime_id}               all executions of the lifetime
    {prefix}:tenant:{tenant_id}                   all executions of the tenant, all time
    {prefix}:tenant:{tenant_id}:day:{YYYY-MM-DD}  the same for one UTC day (TTL 2 days)
    {prefix}:lifetime:{lifetime_id}:counted       set of exec ids already counted
    {prefix}:generation                           written when the aggregates were
                                                  (re)built from the store

An execution is counted in all three hashes in one atomic step, and only if
its exec id was not in the lifetime's ``counted`` set yet, so a redelivered or
re-evaluated execution is counted once. A missing ``generation`` marker means
the KV lost its data (a Redis restarted without persistence) or was never
filled: the control plane then rebuilds every aggregate from the store before
counting anything. A lifetime's two keys expire an hour after it ends.

Fields of each hash (node and metric names percent-encoded, so ``/`` in a
name cannot be confused with the separator)::

    count                       executions
    sum/{metric}  max/{metric}  over all executions
    node/{node}/count
    node/{node}/sum/{metric}  node/{node}/max/{metric}

Every execution counts, whatever its status: a failed or retried attempt spent
its tokens too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from tickrail.adapters.kv.base import KVStore
from tickrail.adapters.kv.memory import MemoryKV
from tickrail.sdk._envelope import header_of, telemetry_of
from tickrail.sdk.pb import envelope_pb2

DEFAULT_PREFIX = "guardrails"
DAY_TTL_S = 2 * 86400.0
# Long enough that a late redelivery after the end is still recognised.
ENDED_LIFETIME_TTL_S = 3600.0
BUILTIN_METRICS = ("tokens_in", "tokens_out", "tokens_used", "cost_usd", "latency_ms")
# Read back as CEL ints so `lifetime.sum.tokens_used > 10000` and integer
# arithmetic work; everything else is a double.
INT_METRICS = frozenset({"tokens_in", "tokens_out", "tokens_used"})

Aggregate = dict[str, Any]


@dataclass(frozen=True)
class Usage:
    """What one execution adds to every scope it belongs to."""

    node: str
    values: Mapping[str, float]

    def fields(self) -> tuple[dict[str, float], dict[str, float]]:
        """The ``add`` and ``maximum`` arguments of ``KVStore.update_counters``."""
        return counter_fields(self.node, self.values.items())


def counter_fields(
    node: str, values: Iterable[tuple[str, float]]
) -> tuple[dict[str, float], dict[str, float]]:
    """``add`` and ``maximum`` for one execution of ``node`` that reported ``values``.

    Field names are cached: the same node and metric names repeat on every
    execution, and percent-encoding them is most of the cost.
    """
    prefix = node_prefix(node)
    add = {"count": 1.0, f"{prefix}count": 1.0}
    maximum: dict[str, float] = {}
    for metric, value in values:
        total, node_total, most, node_most = _metric_fields(prefix, metric)
        add[total] = add[node_total] = value
        maximum[most] = maximum[node_most] = value
    return add, maximum


@functools.lru_cache(maxsize=16384)
def node_prefix(node: str) -> str:
    """``node/{node}/``, percent-encoded: the prefix of a node's fields."""
    return f"node/{quote(node, safe='')}/"


@functools.lru_cache(maxsize=65536)
def _metric_fields(prefix: str, metric: str) -> tuple[str, str, str, str]:
    m = quote(metric, safe="")
    return f"sum/{m}", f"{prefix}sum/{m}", f"max/{m}", f"{prefix}max/{m}"


def usage_of(envelope: envelope_pb2.ExecutionEnvelope) -> Usage:
    return Usage(node=header_of(envelope).name, values=usage_values(telemetry_of(envelope)))


def usage_values(telemetry: envelope_pb2.PolicyTelemetry) -> dict[str, float]:
    """The metric values one execution adds: the built-in ones, then free-form ones."""
    tokens_in = telemetry.tokens_in
    tokens_out = telemetry.tokens_out
    values: dict[str, float] = {
        "tokens_in": float(tokens_in),
        "tokens_out": float(tokens_out),
        "tokens_used": float(tokens_in + tokens_out),
        "cost_usd": telemetry.cost_usd,
        "latency_ms": telemetry.latency_ms,
    }
    if telemetry.metrics:
        for name, value in telemetry.metrics.items():
            # Built-in names are reserved: a free-form "cost_usd" would corrupt the total.
            values.setdefault(name, value)
    return values


def finished_at(envelope: envelope_pb2.ExecutionEnvelope) -> float | None:
    """When the execution finished (else started, else was created), epoch seconds."""
    return header_finished_at(header_of(envelope))


def header_finished_at(header: envelope_pb2.ExecutionHeader) -> float | None:
    for field in ("finished_at", "started_at", "created_at"):
        if header.HasField(field):
            stamp = getattr(header, field)
            return float(stamp.seconds + stamp.nanos / 1e9)
    return None


def utc_day(epoch_s: float) -> str:
    days, into_day = divmod(epoch_s, 86400.0)
    # Away from midnight the day number decides; near it (or for NaN), let
    # datetime round the microseconds exactly as it always did.
    if 0.0 <= into_day < 86399.999:
        return _day_name(int(days))
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d")


@functools.lru_cache(maxsize=1024)
def _day_name(days: int) -> str:
    return dt.datetime.fromtimestamp(days * 86400, dt.UTC).strftime("%Y-%m-%d")


def lifetime_key(lifetime_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:lifetime:{lifetime_id}"


def counted_key(lifetime_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:lifetime:{lifetime_id}:counted"


def generation_key(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:generation"


def tenant_key(tenant_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:tenant:{tenant_id}"


def tenant_day_key(tenant_id: str, day: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:tenant:{tenant_id}:day:{day}"


async def record(
    kv: KVStore, usage: Usage, *, lifetime: str, tenant: str, day: str
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Add one execution to its three scope keys; returns their new counters."""
    add, maximum = usage.fields()
    return await record_fields(kv, add, maximum, lifetime=lifetime, tenant=tenant, day=day)


async def record_fields(
    kv: KVStore,
    add: Mapping[str, float],
    maximum: Mapping[str, float],
    *,
    lifetime: str,
    tenant: str,
    day: str,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """One ``update_counters`` per scope key, concurrently unless the store is in-process."""
    if isinstance(kv, MemoryKV):
        # MemoryKV never suspends: gathering would only cost three tasks (~45 µs).
        return (
            await kv.update_counters(lifetime, add=add, maximum=maximum),
            await kv.update_counters(tenant, add=add, maximum=maximum),
            await kv.update_counters(day, add=add, maximum=maximum, ttl=DAY_TTL_S),
        )
    lifetime_counters, tenant_counters, day_counters = await asyncio.gather(
        kv.update_counters(lifetime, add=add, maximum=maximum),
        kv.update_counters(tenant, add=add, maximum=maximum),
        kv.update_counters(day, add=add, maximum=maximum, ttl=DAY_TTL_S),
    )
    return lifetime_counters, tenant_counters, day_counters


def _fold(usages: Iterable[Usage]) -> tuple[dict[str, float], dict[str, float]]:
    add: dict[str, float] = {}
    maximum: dict[str, float] = {}
    for usage in usages:
        one_add, one_max = usage.fields()
        for field, value in one_add.items():
            add[field] = add.get(field, 0.0) + value
        for field, value in one_max.items():
            maximum[field] = max(maximum.get(field, value), value)
    return add, maximum


def _unique(
    envelopes: Iterable[envelope_pb2.ExecutionEnvelope],
) -> list[envelope_pb2.ExecutionEnvelope]:
    """Each exec_id once: a redelivered envelope spent nothing new."""
    seen: set[str] = set()
    unique = []
    for envelope in envelopes:
        exec_id = header_of(envelope).exec_id
        if exec_id not in seen:
            seen.add(exec_id)
            unique.append(envelope)
    return unique


async def rebuild_lifetime_aggregates(
    kv: KVStore,
    lifetime_id: str,
    envelopes: Sequence[envelope_pb2.ExecutionEnvelope],
    *,
    prefix: str = DEFAULT_PREFIX,
) -> dict[str, float]:
    """Replace a lifetime's aggregate with one recomputed from its recorded envelopes.

    Envelopes of other lifetimes are ignored and each exec_id counts once. Call
    it while the lifetime is not being routed: the delete and the rewrite are two
    operations.
    """
    mine = [e for e in _unique(envelopes) if header_of(e).lifetime_id == lifetime_id]
    key = lifetime_key(lifetime_id, prefix)
    await kv.delete(key)
    if not mine:
        return {}
    add, maximum = _fold(usage_of(e) for e in mine)
    return await kv.update_counters(key, add=add, maximum=maximum)


async def rebuild_tenant_aggregates(
    kv: KVStore,
    tenant_id: str,
    envelopes: Sequence[envelope_pb2.ExecutionEnvelope],
    *,
    prefix: str = DEFAULT_PREFIX,
) -> dict[str, dict[str, float]]:
    """Replace a tenant's all-time aggregate, and its day aggregates for every day
    the envelopes cover, with ones recomputed from the envelopes.

    Returns the rebuilt counters by key. Envelopes without any timestamp count
    all-time only. Day keys for days absent from ``envelopes`` are left alone.
    """
    mine = [e for e in _unique(envelopes) if header_of(e).tenant_id == tenant_id]
    by_day: dict[str, list[Usage]] = {}
    for envelope in mine:
        when = finished_at(envelope)
        if when is not None:
            by_day.setdefault(utc_day(when), []).append(usage_of(envelope))
    rebuilt: dict[str, dict[str, float]] = {}
    key = tenant_key(tenant_id, prefix)
    await kv.delete(key)
    if mine:
        add, maximum = _fold(usage_of(e) for e in mine)
        rebuilt[key] = await kv.update_counters(key, add=add, maximum=maximum)
    for day, usages in sorted(by_day.items()):
        key = tenant_day_key(tenant_id, day, prefix)
        await kv.delete(key)
        add, maximum = _fold(usages)
        rebuilt[key] = await kv.update_counters(key, add=add, maximum=maximum, ttl=DAY_TTL_S)
    return rebuilt


def parse_counters(
    counters: Mapping[str, float],
    *,
    metrics: Iterable[str] = (),
    nodes: Iterable[str] = (),
    all_nodes: bool = True,
) -> Aggregate:
    """A counter hash as the activation shape ``{count, sum, max, nodes}``.

    ``metrics`` and ``nodes`` are pre-filled with 0 so that names a condition
    writes literally read 0 before anything is reported. With ``all_nodes``
    false only the named nodes are included (no condition can see the others,
    and converting them into CEL values costs time on every execution).
    """
    metrics = set(BUILTIN_METRICS).union(metrics)
    wanted = set(nodes)
    node_maps: dict[str, Aggregate] = {}
    aggregate: Aggregate = {"count": 0, "sum": {}, "max": {}, "nodes": node_maps}
    for field, value in counters.items():
        parsed = _parse_field(field)
        if parsed is None:
            continue
        node, kind, metric = parsed
        target = aggregate
        if node is not None:
            if not all_nodes and node not in wanted:
                continue
            target = node_maps.get(node) or node_maps.setdefault(node, _empty())
        if kind == "count":
            target["count"] = int(value)
        else:
            target[kind][metric] = int(value) if metric in INT_METRICS else value
    for node in wanted:
        node_maps.setdefault(node, _empty())
    for target in (aggregate, *node_maps.values()):
        for metric in metrics:
            zero = 0 if metric in INT_METRICS else 0.0
            target["sum"].setdefault(metric, zero)
            target["max"].setdefault(metric, zero)
    return aggregate


@functools.lru_cache(maxsize=65536)
def _parse_field(field: str) -> tuple[str | None, str, str] | None:
    """``node/a%2Fb/sum/x`` -> ("a/b", "sum", "x"); cached, as field names repeat
    on every execution. None for a field this version does not know."""
    parts = field.split("/")
    node = None
    if parts[0] == "node" and len(parts) >= 3:
        node, parts = unquote(parts[1]), parts[2:]
    if parts == ["count"]:
        return node, "count", ""
    if len(parts) == 2 and parts[0] in ("sum", "max"):
        return node, parts[0], unquote(parts[1])
    return None


def _empty() -> Aggregate:
    return {"count": 0, "sum": {}, "max": {}}
