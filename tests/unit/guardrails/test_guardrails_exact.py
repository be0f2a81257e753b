"""Budgets stay exact: an execution counts once however often it is checked, and a KV
that lost the aggregates is refilled (through the ``rebuild`` hook) before counting."""

from __future__ import annotations

from conftest import T0, MakeEnvelope, WriteRules, rule

from tickrail.adapters.kv.memory import MemoryKV
from tickrail.services.control_plane.guardrails import (
    Guardrails,
    Judged,
    PolicySet,
    lifetime_key,
    tenant_key,
)

BUDGET = rule("budget", "lifetime.sum.tokens_used > 250", action="ABORT_LIFETIME")
TENANT = rule("tenant", "tenant.sum.tokens_used > 10000", scope="tenant")


async def test_a_redelivered_execution_counts_once(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = Guardrails(PolicySet.load([rules_file(BUDGET, TENANT)]), kv, clock=lambda: T0)
    first = envelope(exec_id="a.1", tokens_in=100)
    assert await g.check(first, lifetime_started_at=T0) == []
    for _ in range(3):  # redelivered, re-evaluated after a crash: spent nothing new
        assert await g.check(first, lifetime_started_at=T0) == []
    assert (await kv.get_counters(lifetime_key("lt-1")))["sum/tokens_used"] == 100
    assert await g.check(envelope(exec_id="b.1", tokens_in=100), lifetime_started_at=T0) == []
    (verdict,) = await g.check(envelope(exec_id="c.1", tokens_in=100), lifetime_started_at=T0)
    assert verdict.rule == "budget"
    assert (await kv.get_counters(tenant_key("acme")))["sum/tokens_used"] == 300


async def test_lost_aggregates_are_rebuilt_before_counting_and_verdicts_stay(
    rules_file: WriteRules, envelope: MakeEnvelope
) -> None:
    log = [envelope(exec_id=f"x{i}.1", tokens_in=100) for i in range(4)]

    async def verdicts(lose_after: int | None) -> list[list[str]]:
        kv = MemoryKV()
        judged: list = []
        g = Guardrails(PolicySet.load([rules_file(BUDGET)]), kv, clock=lambda: T0)

        async def rebuild() -> None:  # what the control plane does, from its store
            await g.recount([Judged("lt-1", list(judged))])

        g.rebuild = rebuild
        out = []
        for i, env in enumerate(log):
            if i == lose_after:
                kv = g._kv = MemoryKV()  # a Redis restarted without persistence
            out.append([v.rule for v in await g.check(env, lifetime_started_at=T0)])
            judged.append(env)
        return out

    undisturbed = await verdicts(None)
    assert undisturbed == [[], [], ["budget"], ["budget"]]
    for lose_after in range(4):
        assert await verdicts(lose_after) == undisturbed, lose_after


async def test_recount_replaces_stale_counters_and_expires_ended_lifetimes(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = Guardrails(PolicySet.load([rules_file(BUDGET)]), kv, clock=lambda: T0)
    await kv.update_counters(lifetime_key("lt-1"), add={"sum/tokens_used": 1e9})
    done = [envelope(exec_id="d.1", tokens_in=7, lifetime_id="lt-2")]
    live = [envelope(exec_id="e.1", tokens_in=5), envelope(exec_id="e.2", tokens_in=6)]
    assert await g.recount([Judged("lt-1", live), Judged("lt-2", done, ended=True)]) == 3
    assert (await kv.get_counters(lifetime_key("lt-1")))["sum/tokens_used"] == 11
    assert (await kv.get_counters(tenant_key("acme")))["sum/tokens_used"] == 18
    # Counted already by the recount: a redelivery after it adds nothing.
    await g.check(live[0], lifetime_started_at=T0)
    assert (await kv.get_counters(lifetime_key("lt-1")))["sum/tokens_used"] == 11
    assert lifetime_key("lt-2") in kv._expiry
