"""Guardrails: record an execution's usage, then evaluate the policies on it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tickrail.adapters.kv.base import Counted, CounterKey, KVStore
from tickrail.adapters.kv.memory import MemoryKV
from tickrail.sdk._envelope import header_of, telemetry_of
from tickrail.sdk.pb import envelope_pb2

from ._aggregates import (
    DAY_TTL_S,
    DEFAULT_PREFIX,
    ENDED_LIFETIME_TTL_S,
    counted_key,
    counter_fields,
    finished_at,
    generation_key,
    header_finished_at,
    lifetime_key,
    tenant_day_key,
    tenant_key,
    usage_values,
    utc_day,
)
from ._policyset import PolicySet
from ._verdict import Verdict
from ._watcher import PolicyWatcher

log = logging.getLogger("tickrail.guardrails")


@dataclass(frozen=True, slots=True)
class Judged:
    """A lifetime's executions that the control plane has judged, in order:
    what its aggregates must hold (``ended``: the lifetime is over)."""

    lifetime_id: str
    envelopes: Sequence[envelope_pb2.ExecutionEnvelope]
    ended: bool = False


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
        rebuild: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._policies = policies
        self._kv = kv
        self._clock = clock
        self._prefix = key_prefix
        #: called when the KV has lost the aggregates (no generation marker):
        #: the control plane recounts from the store (``recount``). Without it
        #: an empty KV is taken as a fresh start.
        self.rebuild = rebuild

    @property
    def policies(self) -> PolicySet:
        source = self._policies
        return source.current if isinstance(source, PolicyWatcher) else source

    async def check(
        self,
        envelope: envelope_pb2.ExecutionEnvelope,
        *,
        lifetime_started_at: float,
        now: float | None = None,
    ) -> list[Verdict]:
        """Add the execution to its aggregates, then return the rules that fire.

        Idempotent per exec id: an execution checked again (redelivered, or a
        retried batch) is not counted again. ``now`` defaults to the clock; ``what_if`` passes the
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
        """Count the execution in its three scopes, once per exec id (atomic);
        returns the scopes' counters afterwards."""
        for attempt in range(3):
            counted = await self._count(envelope, now=now)
            if counted is not None:
                lifetime, tenant, day = counted.counters
                return lifetime, tenant, day
            if self.rebuild is not None and attempt == 0:
                log.warning("guardrail aggregates are missing from the KV; rebuilding them")
                await self.rebuild()
            else:
                await self.mark_generation()
        raise AssertionError("the guardrail generation marker keeps disappearing")

    async def _count(
        self, envelope: envelope_pb2.ExecutionEnvelope, *, now: float
    ) -> Counted | None:
        header = header_of(envelope)
        lifetime, tenant, day = self.keys_for(envelope, now=now)
        add, maximum = counter_fields(header.name, usage_values(telemetry_of(envelope)).items())
        return await self._kv.count_once(
            marker=generation_key(self._prefix),
            seen=counted_key(header.lifetime_id, self._prefix),
            token=header.exec_id,
            keys=[CounterKey(lifetime), CounterKey(tenant), CounterKey(day, DAY_TTL_S)],
            add=add,
            maximum=maximum,
        )

    async def mark_generation(self) -> None:
        """Say the KV holds complete aggregates (written after a rebuild)."""
        await self._kv.set(generation_key(self._prefix), repr(self._clock()).encode())

    async def recount(self, judged: Sequence[Judged], *, concurrency: int = 64) -> int:
        """Replace every aggregate with one counted from these executions.

        ``judged`` must cover every lifetime the KV may hold aggregates for
        (the control plane passes all recorded lifetimes), each with the
        executions it judged, so nothing is counted that the live path would
        count again. Returns how many executions were counted.
        """
        stale: set[str] = set()
        for one in judged:
            stale |= {lifetime_key(one.lifetime_id, self._prefix)}
            stale |= {counted_key(one.lifetime_id, self._prefix)}
            for envelope in one.envelopes:
                stale |= set(self.keys_for(envelope, now=self._clock())[1:])
        for key in sorted(stale):
            await self._kv.delete(key)
        await self.mark_generation()
        slots = asyncio.Semaphore(concurrency)

        async def count(envelope: envelope_pb2.ExecutionEnvelope) -> None:
            async with slots:
                when = finished_at(envelope)
                await self._count(envelope, now=self._clock() if when is None else when)

        total = 0
        for one in judged:
            await asyncio.gather(*(count(e) for e in one.envelopes))
            total += len(one.envelopes)
            if one.ended:
                await self.lifetime_ended(one.lifetime_id)
        return total

    async def lifetime_ended(self, lifetime_id: str) -> None:
        """Let a finished lifetime's aggregate and counted set expire."""
        for key in (
            lifetime_key(lifetime_id, self._prefix),
            counted_key(lifetime_id, self._prefix),
        ):
            await self._kv.expire(key, ENDED_LIFETIME_TTL_S)


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
