"""Guardrails.check: aggregates in the KV store, cumulative rules, rebuild, what_if."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, MakeEnvelope, WriteRules, rule

from tickrail.adapters.kv.base import KVStore
from tickrail.adapters.kv.memory import MemoryKV
from tickrail.sdk.pb import envelope_pb2
from tickrail.services.control_plane.guardrails import (
    DAY_TTL_S,
    Guardrails,
    PolicySet,
    PolicyWatcher,
    Verdict,
    lifetime_key,
    rebuild_lifetime_aggregates,
    rebuild_tenant_aggregates,
    strongest,
    tenant_day_key,
    tenant_key,
    what_if,
)

DAY = 86400.0
SEED = rule("seed", "lifetime.sum.tokens_used > 10000", action="ABORT_LIFETIME")


class RecordingKV(MemoryKV):
    """A MemoryKV that remembers every update_counters call."""

    def __init__(self) -> None:
        super().__init__()
        self.updates: list[tuple[str, float | None]] = []

    async def update_counters(
        self,
        key: str,
        add: Mapping[str, float] | None = None,
        maximum: Mapping[str, float] | None = None,
        ttl: float | None = None,
    ) -> dict[str, float]:
        self.updates.append((key, ttl))
        return await super().update_counters(key, add=add, maximum=maximum, ttl=ttl)


def guardrails(path: Path, kv: KVStore, now: float = T0) -> Guardrails:
    return Guardrails(PolicySet.load([path]), kv, clock=lambda: now)


async def names(g: Guardrails, env: envelope_pb2.ExecutionEnvelope, **kw: Any) -> list[str]:
    return [v.rule for v in await g.check(env, lifetime_started_at=T0, **kw)]


# ---- the seed rule and cumulative budgets --------------------------------------------------


async def test_the_seed_rule(rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV) -> None:
    g = guardrails(rules_file(SEED), kv)
    (verdict,) = await g.check(envelope(tokens_in=9000, tokens_out=1001), lifetime_started_at=T0)
    assert verdict == Verdict(
        rule="seed",
        action="ABORT_LIFETIME",
        scope="lifetime",
        message="guardrail seed fired",
        policy_version=g.policies.version,
        observed={"lifetime.sum.tokens_used": 10001},
    )


async def test_a_budget_crossed_by_several_executions(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = guardrails(rules_file(SEED), kv)
    spent = [await names(g, envelope(tokens_in=3000, tokens_out=1000)) for _ in range(3)]
    assert spent == [[], [], ["seed"]]
    # Another lifetime of the same tenant starts from zero.
    assert await names(g, envelope(lifetime_id="lt-2", tokens_in=4000)) == []


async def test_failed_and_retrying_attempts_count(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = guardrails(rules_file(SEED, rule("attempts", "lifetime.count >= 3")), kv)
    statuses = [
        envelope_pb2.EXECUTION_STATUS_RETRYING,
        envelope_pb2.EXECUTION_STATUS_FAILED,
        envelope_pb2.EXECUTION_STATUS_TIMED_OUT,
    ]
    results = [await names(g, envelope(status=s, tokens_in=4000)) for s in statuses]
    assert results == [[], [], ["seed", "attempts"]]


async def test_one_counter_update_per_scope_key_with_a_ttl_on_the_day(
    rules_file: WriteRules, envelope: MakeEnvelope
) -> None:
    kv = RecordingKV()
    g = guardrails(rules_file(SEED), kv)
    await g.check(envelope(), lifetime_started_at=T0)
    assert sorted(kv.updates) == sorted(
        [
            ("guardrails:lifetime:lt-1", None),
            ("guardrails:tenant:acme", None),
            ("guardrails:tenant:acme:day:2023-11-14", DAY_TTL_S),
        ]
    )


async def test_the_key_prefix_is_configurable(
    rules_file: WriteRules, envelope: MakeEnvelope
) -> None:
    kv = RecordingKV()
    g = Guardrails(PolicySet.load([rules_file(SEED)]), kv, key_prefix="test-7:gr")
    await g.check(envelope(), lifetime_started_at=T0)
    assert {key for key, _ in kv.updates} == {
        lifetime_key("lt-1", "test-7:gr"),
        tenant_key("acme", "test-7:gr"),
        tenant_day_key("acme", "2023-11-14", "test-7:gr"),
    }


async def test_actions_by_scope(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = guardrails(
        rules_file(
            rule(
                "big-call",
                "execution.tokens_used > 500",
                scope="execution",
                action="REJECT_EXECUTION",
            ),
            rule("lifetime-big", "lifetime.sum.tokens_used > 800", action="PAUSE_LIFETIME"),
            rule("tenant-big", "tenant.sum.tokens_used > 1000", scope="tenant"),
        ),
        kv,
    )
    assert await names(g, envelope(tokens_in=600)) == ["big-call"]
    assert await names(g, envelope(tokens_in=300)) == ["lifetime-big"]
    assert await names(g, envelope(lifetime_id="lt-2", tokens_in=200)) == ["tenant-big"]


async def test_strongest_verdict_wins(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = guardrails(
        rules_file(
            rule("reject", "execution.attempt >= 1", scope="execution", action="REJECT_EXECUTION"),
            rule("abort", "lifetime.count >= 1", action="ABORT_LIFETIME"),
            rule("pause", "lifetime.count >= 1", action="PAUSE_LIFETIME"),
        ),
        kv,
    )
    verdicts = await g.check(envelope(), lifetime_started_at=T0)
    assert [v.rule for v in verdicts] == ["reject", "abort", "pause"]
    assert strongest(verdicts) == verdicts[1]
    assert strongest([]) is None


async def test_match_limits_which_executions_a_rule_sees(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = guardrails(
        rules_file(
            rule(
                "slow-search",
                "execution.latency_ms > 100.0",
                scope="execution",
                match={"nodes": ["search"]},
            )
        ),
        kv,
    )
    assert await names(g, envelope("search", latency_ms=500.0)) == ["slow-search"]
    assert await names(g, envelope("write", latency_ms=500.0)) == []


async def test_tenant_overrides_apply_at_check_time(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    defaults = rules_file(SEED, rule("count", "lifetime.count > 0"), name="a.yaml")
    acme = rules_file(
        rule("seed", "lifetime.sum.tokens_used > 50000"),
        name="b.yaml",
        tenant="acme",
        disable=["count"],
    )
    g = Guardrails(PolicySet.load([defaults, acme]), kv)
    assert await names(g, envelope(tenant_id="acme", tokens_in=20000)) == []
    assert await names(g, envelope(tenant_id="globex", tokens_in=20000)) == ["seed", "count"]


# ---- per-node aggregates and the day window ------------------------------------------------


async def test_per_node_aggregates(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = guardrails(
        rules_file(
            rule(
                "search-stats",
                "lifetime.nodes.search.count == 2 && "
                "lifetime.nodes.search.sum.tokens_used == 30 && "
                "lifetime.nodes.search.max.latency_ms == 70.0 && "
                "lifetime.nodes.write.count == 1 && "
                "lifetime.count == 3 && lifetime.max.tokens_used == 20",
            ),
            rule("own-node", "lifetime.nodes[execution.name].count >= 2"),
        ),
        kv,
    )
    assert await names(g, envelope("search", tokens_in=10, latency_ms=70.0)) == []
    assert await names(g, envelope("write", tokens_in=20, latency_ms=5.0)) == []
    assert await names(g, envelope("search", tokens_in=20, latency_ms=30.0)) == [
        "search-stats",
        "own-node",
    ]


async def test_the_day_window_resets_at_utc_midnight(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = guardrails(
        rules_file(
            rule("daily", "tenant.day.sum.cost_usd > 1.5", scope="tenant"),
            rule("all-time", "tenant.sum.cost_usd > 2.5", scope="tenant"),
        ),
        kv,
    )
    assert await names(g, envelope(cost_usd=1.0)) == []
    assert await names(g, envelope(cost_usd=1.0, lifetime_id="lt-2")) == ["daily"]
    # Next day: the day aggregate starts again, the all-time one does not.
    assert await names(g, envelope(cost_usd=1.0, finished_at=T0 + DAY)) == ["all-time"]
    assert (await kv.get_counters(tenant_day_key("acme", "2023-11-14")))["sum/cost_usd"] == 2.0
    assert (await kv.get_counters(tenant_day_key("acme", "2023-11-15")))["sum/cost_usd"] == 1.0


async def test_the_day_comes_from_the_clock_when_the_envelope_has_no_time(
    rules_file: WriteRules, envelope: MakeEnvelope
) -> None:
    kv = RecordingKV()
    g = guardrails(rules_file(SEED), kv, now=T0 + 3 * DAY)
    await g.check(envelope(finished_at=None), lifetime_started_at=T0)
    assert ("guardrails:tenant:acme:day:2023-11-17", DAY_TTL_S) in kv.updates


async def test_names_with_slashes_do_not_collide(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = guardrails(
        rules_file(
            rule("odd", 'lifetime.nodes["a/b"].sum["x/y"] == 2.0 && lifetime.nodes["a"].count == 0')
        ),
        kv,
    )
    assert await names(g, envelope("a/b", metrics={"x/y": 2.0})) == ["odd"]


async def test_a_watcher_supplies_the_current_set(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(rule("one", "lifetime.count >= 1"))
    watcher = PolicyWatcher([path])
    g = Guardrails(watcher, kv)
    assert await names(g, envelope()) == ["one"]
    rules_file(rule("two", "lifetime.count >= 1"))
    assert watcher.reload()
    (verdict,) = await g.check(envelope(), lifetime_started_at=T0)
    assert verdict.rule == "two" and verdict.policy_version == watcher.current.version


# ---- rebuild and what_if -------------------------------------------------------------------


def recorded_lifetime(envelope: MakeEnvelope) -> list[envelope_pb2.ExecutionEnvelope]:
    return [
        envelope(
            "plan",
            kind="plan",
            tokens_in=100,
            tokens_out=20,
            cost_usd=0.01,
            latency_ms=40.0,
            model="m1",
        ),
        envelope(
            "search",
            tokens_in=3000,
            tokens_out=500,
            cost_usd=0.2,
            latency_ms=900.0,
            metrics={"docs": 4.0},
            status=envelope_pb2.EXECUTION_STATUS_RETRYING,
        ),
        envelope(
            "search",
            attempt=2,
            tokens_in=3200,
            tokens_out=600,
            cost_usd=0.25,
            latency_ms=1200.0,
            metrics={"docs": 6.0},
            finished_at=T0 + DAY,
        ),
        envelope(
            "plan",
            kind="plan",
            iteration=2,
            tokens_in=150,
            tokens_out=30,
            cost_usd=0.02,
            latency_ms=35.0,
            finished_at=T0 + DAY + 5,
        ),
        envelope(
            "write",
            tokens_in=4000,
            tokens_out=2000,
            cost_usd=0.6,
            latency_ms=3000.0,
            model="m2",
            finished_at=T0 + DAY + 9,
        ),
    ]


async def test_rebuild_equals_incremental(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    log = recorded_lifetime(envelope)
    g = guardrails(rules_file(SEED), kv)
    for env in log:
        await g.check(env, lifetime_started_at=T0)
    keys = [
        lifetime_key("lt-1"),
        tenant_key("acme"),
        tenant_day_key("acme", "2023-11-14"),
        tenant_day_key("acme", "2023-11-15"),
    ]
    incremental = {key: await kv.get_counters(key) for key in keys}
    assert incremental[lifetime_key("lt-1")]["node/search/count"] == 2

    async with MemoryKV() as fresh:
        # A redelivered envelope and another lifetime's do not disturb the rebuild.
        noise = [log[0], envelope(lifetime_id="other", tenant_id="globex", tokens_in=99)]
        lifetime = await rebuild_lifetime_aggregates(fresh, "lt-1", [*log, *noise])
        tenant = await rebuild_tenant_aggregates(fresh, "acme", [*log, *noise])
        assert lifetime == incremental[lifetime_key("lt-1")]
        assert tenant == {key: incremental[key] for key in keys[1:]}
        assert {key: await fresh.get_counters(key) for key in keys} == incremental

    # Rebuilding over stale counters replaces them.
    await kv.update_counters(lifetime_key("lt-1"), add={"sum/tokens_used": 1e9})
    assert await rebuild_lifetime_aggregates(kv, "lt-1", log) == incremental[lifetime_key("lt-1")]


async def test_what_if_replays_a_recorded_lifetime(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    log = recorded_lifetime(envelope)
    policies = PolicySet.load(
        [
            rules_file(
                SEED,
                rule(
                    "model", 'execution.model == "m2"', scope="execution", action="REJECT_EXECUTION"
                ),
                rule(
                    "tenant-day", "tenant.day.count >= 2", scope="tenant", action="PAUSE_LIFETIME"
                ),
                rule("a-day-later", "lifetime.elapsed_s > 86400.0"),
            )
        ]
    )
    results = await what_if(policies, log, lifetime_started_at=T0)
    by_exec = [(exec_id, v.rule) for exec_id, v in results]
    ids = [e.task.header.exec_id or e.plan.header.exec_id for e in log]
    assert by_exec == [
        (ids[1], "tenant-day"),
        (ids[3], "tenant-day"),
        (ids[3], "a-day-later"),
        (ids[4], "seed"),
        (ids[4], "model"),
        (ids[4], "tenant-day"),
        (ids[4], "a-day-later"),
    ]
    assert all(v.policy_version == policies.version for _, v in results)
    # Nothing was written to any store but what_if's own.
    assert await kv.get_counters(lifetime_key("lt-1")) == {}


async def test_what_if_with_no_rules_fires_nothing(envelope: MakeEnvelope) -> None:
    assert await what_if(PolicySet.empty(), recorded_lifetime(envelope), T0) == []


@pytest.mark.parametrize("kind", ["task", "plan"])
async def test_plans_and_tasks_are_both_counted(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV, kind: str
) -> None:
    g = guardrails(
        rules_file(rule("kind", f'execution.kind == "{kind}" && lifetime.sum.tokens_in == 7')), kv
    )
    assert await names(g, envelope(kind=kind, tokens_in=7)) == ["kind"]
