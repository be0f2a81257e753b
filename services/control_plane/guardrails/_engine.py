"""Guardrails: record an execution's usage, then evaluate the policies on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tickrail.adapters.kv.base import KVStore
from tickrail.adapters.kv.memory import MemoryKV
from tickrail.sdk._envelope import header_of, telemetry_of
from tickrail.sdk.pb import envelope_pb2

from ._aggregates import (
    DEFAULT_PREFIX,
    counter_fields,
    finished_at,
    header_finished_at,
    lifetime_key,
    rebuild_lifetime_aggregates,
    rebuild_tenant_aggregates,
    record_fields,
    tenant_day_key,
    tenant_key,
    usage_values,
    utc_day,
)
from ._policyset import PolicySet
from ._verdict import Verdict
from ._watcher import PolicyWatcher


class Guardrails:
    """What the control plane calls once per execution, before routing it.

    ``policies`` may be a PolicyWatcher: each check then uses the set current
    when it starts, so a reload never splits one execution across two sets.
    """

    def __init__(
        self,
        policies: PolicySet | PolicyWatcher,
        kv: KVStore,
        *,
        clock: Callable[[], float] = time.time,
        key_prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._policies = policies
        self._kv = kv
        self._clock = clock
        self._prefix = key_prefix

    @property
    def policies(self) -> PolicySet:
        source = self._policies
        return source.current if isinstance(source, PolicyWatcher) else source

    async def restore_tenant(
        self, tenant_id: str, envelopes: Sequence[envelope_pb2.ExecutionEnvelope]
    ) -> None:
        """Recompute a tenant's all-time and per-day aggregates from its executions."""
        await rebuild_tenant_aggregates(self._kv, tenant_id, envelopes, prefix=self._prefix)

    async def restore_lifetime(
        self, lifetime_id: str, envelopes: Sequence[envelope_pb2.ExecutionEnvelope]
    ) -> None:
        """Recompute a lifetime's aggregate from its recorded executions.

        The control plane calls this when it rebuilds a lifetime from the store
        (a restart, another replica, a resume in a new process), so a budget
        counts everything the lifetime spent, not only what came after.
        """
        if self.policies.has_rules:
            await rebuild_lifetime_aggregates(self._kv, lifetime_id, envelopes, prefix=self._prefix)

    async def check(
        self,
        envelope: envelope_pb2.ExecutionEnvelope,
        *,
        lifetime_started_at: float,
        now: float | None = None,
    ) -> list[Verdict]:
        """Add the execution to its aggregates, then return the rules that fire.

        Not idempotent: call it once per recorded execution (skip redelivered
        duplicates). ``now`` defaults to the clock; ``what_if`` passes the
        execution's own time. Raises PolicyError if a condition fails.

        Every execution is recorded while any rule is loaded, applicable or not;
        with no rules loaded at all nothing is recorded (docs/policies.md, "Cost").
        """
        policies = self.policies
        if not policies.has_rules:
            # Nothing can read the aggregates: skip the KV (docs/policies.md, "Cost").
            return []
        now = self._clock() if now is None else now
        lifetime, tenant, day = await self.record(envelope, now=now)
        return policies.evaluate_counters(
            envelope,
            lifetime=lifetime,
            tenant=tenant,
            day=day,
            elapsed_s=now - lifetime_started_at,
        )

    def keys_for(
        self, envelope: envelope_pb2.ExecutionEnvelope, *, now: float
    ) -> tuple[str, str, str]:
        """The lifetime, tenant and tenant-day keys the execution counts in.

        The day is the UTC day the execution finished (``now`` if the envelope
        carries no timestamp), so a rebuild from the log lands in the same key.
        """
        header = header_of(envelope)
        when = header_finished_at(header)
        day = utc_day(now if when is None else when)
        return (
            lifetime_key(header.lifetime_id, self._prefix),
            tenant_key(header.tenant_id, self._prefix),
            tenant_day_key(header.tenant_id, day, self._prefix),
        )

    async def record(
        self, envelope: envelope_pb2.ExecutionEnvelope, *, now: float
    ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """One atomic ``update_counters`` per scope key; returns the new counters."""
        lifetime, tenant, day = self.keys_for(envelope, now=now)
        add, maximum = counter_fields(
            header_of(envelope).name, usage_values(telemetry_of(envelope)).items()
        )
        return await record_fields(
            self._kv, add, maximum, lifetime=lifetime, tenant=tenant, day=day
        )


async def what_if(
    policies: PolicySet,
    envelopes: Sequence[envelope_pb2.ExecutionEnvelope],
    lifetime_started_at: float,
) -> list[tuple[str, Verdict]]:
    """Evaluate ``policies`` against a recorded lifetime, execution by execution.

    Aggregates start empty in a private MemoryKV, so nothing is written
    anywhere. Tenant aggregates therefore hold only this lifetime's executions,
    not the tenant's other work. Each execution is evaluated at its own
    recorded time; every execution is evaluated, even after one that would
    have aborted the lifetime. Returns (exec_id, verdict) pairs in order.
    """
    fired: list[tuple[str, Verdict]] = []
    seen: set[str] = set()
    async with MemoryKV() as kv:
        guardrails = Guardrails(policies, kv)
        for envelope in envelopes:
            exec_id = header_of(envelope).exec_id
            if exec_id in seen:
                continue
            seen.add(exec_id)
            when = finished_at(envelope)
            now = lifetime_started_at if when is None else when
            for verdict in await guardrails.check(
                envelope, lifetime_started_at=lifetime_started_at, now=now
            ):
                fired.append((exec_id, verdict))
    return fired
