"""The hot path: leaf rewriting, per-selection plans, and the KV work each check does.

``Guardrails.check`` evaluates rewritten conditions on just the leaves they read
(see services/control_plane/guardrails/_leaves.py); these tests hold it to the
written conditions evaluated on the whole activation, verdict for verdict,
observed value for observed value, error for error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import cel
import pytest
from conftest import T0, MakeEnvelope, WriteRules, rule

from tickrail.adapters.kv.memory import MemoryKV
from tickrail.sdk.errors import PolicyError
from tickrail.sdk.pb import envelope_pb2
from tickrail.services.control_plane.guardrails import (
    EvaluationContext,
    Guardrails,
    PolicySet,
    tenant_day_key,
)
from tickrail.services.control_plane.guardrails._aggregates import usage_of, utc_day
from tickrail.services.control_plane.guardrails._expressions import (
    ConditionError,
    compile_condition,
)

# Conditions that never fail; they share one policy set (and so its pre-filled names).
SAFE = {
    "sum": "lifetime.sum.tokens_used > 100",
    "count-max": "lifetime.count >= 1 && lifetime.max.latency_ms > 0.0",
    "quoted": 'lifetime.nodes["a/b"].sum["x/y"] >= 0.0 && lifetime.nodes.search.count >= 0',
    "own-node": "lifetime.nodes[execution.name].sum.cost_usd >= 0.0 && "
    "lifetime.nodes[execution.name].max.tokens_in > 5",
    "tenant-nodes": "tenant.day.nodes.search.max.latency_ms >= 0.0 && "
    "tenant.nodes[execution.name].count > 1",
    "tenant-avg": "tenant.sum.cost_usd / double(tenant.count) > 0.1",
    "metrics": 'execution.metrics.tool_calls >= 1.0 || execution.metrics["x/y"] > 0.0',
    "status-kind": 'execution.status == "RETRYING" || execution.kind == "plan"',
    "tokens": "execution.tokens_used == execution.tokens_in + execution.tokens_out",
    "strings": 'execution.model in ["m1"] && execution.graph_version == "" && '
    'execution.lifetime_id != "" && execution.tenant_id == "acme" && execution.graph_id == "g"',
    "elapsed": "lifetime.elapsed_s > 10.0",
    "free-form": "lifetime.sum.tool_calls > 1.0 && lifetime.max.tool_calls >= 1.0",
    "types": "type(lifetime.sum.tokens_used) == int && type(lifetime.sum.cost_usd) == double "
    "&& type(lifetime.count) == int && type(execution.iteration) == int",
    "int-arithmetic": "lifetime.sum.tokens_used + 1 > 20 && execution.attempt * 2 >= 2",
    "unreported-node": "lifetime.nodes.never.count == 0 && "
    "lifetime.nodes.never.sum.tool_calls == 0.0",
    "multi-line": "lifetime.count > 1 &&\n  lifetime.nodes[execution.name].count >= 1",
    # Read whole maps (in part or entirely):
    "comprehension": "lifetime.nodes.exists(n, lifetime.nodes[n].count >= 2) && lifetime.count > 1",
    "metric-scan": 'execution.metrics.exists(m, m.startsWith("err")) || '
    "lifetime.sum.cost_usd > 1.0",
    "in-map": '"retrieved" in execution.metrics && execution.metrics["retrieved"] > 1.0',
    "has-metric": "has(lifetime.sum.tool_calls) && lifetime.sum.tool_calls >= 0.0",
    "has-node": "has(lifetime.nodes.b) && lifetime.nodes.b.count == 0",
    "size": "size(tenant.day.nodes) > 1 && tenant.day.count > 0",
    "whole-root": "type(execution) == map && execution.attempt >= 1",
    "parenthesised": "(lifetime).count > 2",
    "shadowed-root": "lifetime.nodes.exists(execution, size(execution) > 3) && "
    "execution.attempt > 0",
    "comment": "lifetime.count > 0 // lifetime.sum.tokens_used",
}
# Conditions that fail on some executions; one per set, since a failure ends a check.
FRAGILE = {
    "division": "execution.attempt > 1 && lifetime.count / 0 > 1",
    "builtin-metric": "execution.attempt > 1 && execution.metrics.cost_usd > 0.0",
    "dynamic-key": "execution.attempt > 1 && lifetime.sum[execution.model] > 0.0",
    "no-such-field": 'execution.name == "a/b" && lifetime.nodes[execution.name].latency > 1',
    "mixed-types": "execution.attempt > 1 && lifetime.sum.tokens_used + 0.5 > 0.0",
    "non-boolean": "execution.attempt > 1 ? lifetime.count : true",
}


#: The conditions the loader keeps rewritten (the others are evaluated as written).
REWRITTEN = set(SAFE) - {"parenthesised", "shadowed-root", "comment"}


def executions(envelope: MakeEnvelope) -> list[envelope_pb2.ExecutionEnvelope]:
    return [
        envelope("search", tokens_in=10, latency_ms=70.0, model="m1", metrics={"tool_calls": 2.0}),
        envelope("a/b", tokens_in=3, tokens_out=4, cost_usd=0.2, metrics={"x/y": 2.0}),
        envelope("search", kind="plan", attempt=2, iteration=2, cost_usd=0.5, model="m2"),
        envelope(
            "write",
            status=envelope_pb2.EXECUTION_STATUS_RETRYING,
            metrics={"errors.timeout": 1.0, "retrieved": 4.0, "cost_usd": 9.0, "m2": 1.0},
            model="m2",
        ),
        envelope("b", lifetime_id="lt-2", graph_id="g", tokens_in=50, attempt=3),
        envelope("search", tenant_id="globex", tokens_out=7),
    ]


def counters(envelopes: list[envelope_pb2.ExecutionEnvelope]) -> dict[str, float]:
    add: dict[str, float] = {}
    maximum: dict[str, float] = {}
    for env in envelopes:
        one_add, one_max = usage_of(env).fields()
        for k, v in one_add.items():
            add[k] = add.get(k, 0.0) + v
        for k, v in one_max.items():
            maximum[k] = max(maximum.get(k, v), v)
    return {**add, **maximum}


def typed(observed: Mapping[str, Any]) -> dict[str, tuple[type, Any]]:
    return {key: (type(value), value) for key, value in observed.items()}


def as_written(policies: PolicySet, context: EvaluationContext) -> list[Any]:
    """The reference: every written condition on the whole activation."""
    activation = cel.Context(variables=dict(context.activation))
    fired: list[Any] = []
    for r in policies.rules_for(context.tenant_id, context.graph_id, context.node):
        try:
            if r.condition.evaluate(activation):
                fired.append((r.name, typed(r.condition.observe(activation))))
        except ConditionError as exc:
            return [("error", r.name, str(exc))]
    return fired


def outcome(evaluate: Any) -> list[Any]:
    try:
        return [(v.rule, typed(v.observed)) for v in evaluate()]
    except PolicyError as exc:
        message = str(exc).split("condition failed: ", 1)[1]
        return [("error", exc.rule, message)]


def policy_sets(rules_file: WriteRules) -> list[PolicySet]:
    sets = [PolicySet.load([rules_file(*(rule(n, c, scope="tenant") for n, c in SAFE.items()))])]
    for name, condition in FRAGILE.items():
        sets.append(
            PolicySet.load([rules_file(rule(name, condition, scope="tenant"), name=f"{name}.yaml")])
        )
    return sets


def test_the_check_path_evaluates_exactly_as_written(
    rules_file: WriteRules, envelope: MakeEnvelope
) -> None:
    log = executions(envelope)
    errors = set()
    sets = policy_sets(rules_file)
    # The rewrite survived the loader's own check on its sample execution, so
    # the comparison below exercises it.
    assert {r.name for r in sets[0].rules if r.condition.flattened} == REWRITTEN
    assert all(s.rules[0].condition.flattened for s in sets[1:])
    for policies in sets:
        for i, env in enumerate(log):
            scopes = {
                "lifetime": counters(log[: i + 1]),
                "tenant": counters(log),
                "day": counters(log[i:]),
            }
            context = policies.context(env, elapsed_s=30.0 + i, **scopes)
            expected = as_written(policies, context)
            fast = outcome(lambda: policies.evaluate_counters(env, elapsed_s=30.0 + i, **scopes))  # noqa: B023
            compat = outcome(lambda: policies.evaluate(context))  # noqa: B023
            assert fast == expected, (i, env)
            assert compat == expected, (i, env)
            errors |= {item[1] for item in expected if item[0] == "error"}
    # Every fragile condition did fail somewhere, so errors were compared too.
    assert errors == set(FRAGILE)


def test_leaf_paths_are_rewritten_and_maps_stay_whole() -> None:
    def analysed(source: str) -> tuple[bool, list[str]]:
        condition = compile_condition(source, "tenant")
        return condition.flattened, sorted(condition.nested)

    for name in list(SAFE)[:16]:
        assert analysed(SAFE[name]) == (True, []), name
    assert analysed(SAFE["comprehension"]) == (True, ["lifetime"])
    assert analysed(SAFE["has-metric"]) == (True, ["lifetime"])  # has() needs the field
    assert analysed(SAFE["whole-root"]) == (True, ["execution"])
    for name in ("parenthesised", "shadowed-root", "comment"):
        assert analysed(SAFE[name])[0] is False, name
    # A built-in name may be absent from execution.metrics; a run-time key needs the map.
    for name, nested in (
        ("builtin-metric", ["execution"]),
        ("dynamic-key", ["execution", "lifetime"]),
    ):
        condition = compile_condition(FRAGILE[name], "tenant")
        assert sorted(condition.nested) == nested
        assert FRAGILE[name].split("&& ")[1] in condition.flat_program.source
    flat = compile_condition("lifetime.nodes[execution.name].count > 25", "lifetime")
    assert "execution" not in flat.flat_program.source
    assert flat.flat_program.variables() == [flat.leaves[0][0]]


async def test_a_check_reports_observed_values_of_rewritten_paths(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule(
            "reads",
            "lifetime.nodes[execution.name].sum.tokens_used >= 30 && "
            'tenant.day.count >= 2 && execution.model == "m" && lifetime.elapsed_s > 1.0',
            scope="tenant",
        )
    )
    g = Guardrails(PolicySet.load([path]), kv, clock=lambda: T0 + 5)
    assert await g.check(envelope("w", tokens_in=10), lifetime_started_at=T0) == []
    (verdict,) = await g.check(envelope("w", tokens_in=20, model="m"), lifetime_started_at=T0)
    assert typed(verdict.observed) == {
        "lifetime.nodes[execution.name].sum.tokens_used": (int, 30),
        "tenant.day.count": (int, 2),
        "execution.model": (str, "m"),
        "lifetime.elapsed_s": (float, 5.0),
    }


class CountingKV(MemoryKV):
    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    async def update_counters(
        self,
        key: str,
        add: Mapping[str, float] | None = None,
        maximum: Mapping[str, float] | None = None,
        ttl: float | None = None,
    ) -> dict[str, float]:
        self.keys.append(key)
        return await super().update_counters(key, add=add, maximum=maximum, ttl=ttl)


async def test_an_empty_policy_set_does_no_kv_work(envelope: MakeEnvelope) -> None:
    kv = CountingKV()
    g = Guardrails(PolicySet.empty(), kv)
    assert await g.check(envelope(tokens_in=10**9), lifetime_started_at=T0) == []
    assert kv.keys == []


async def test_executions_no_rule_matches_still_count(
    rules_file: WriteRules, envelope: MakeEnvelope
) -> None:
    # Aggregates stay exact for rules loaded later and for rules of other graphs:
    # a tenant rule on graph "g" must see what the tenant spent elsewhere.
    kv = CountingKV()
    path = rules_file(
        rule("g-only", "tenant.sum.tokens_used > 100", scope="tenant", match={"graphs": ["g"]})
    )
    g = Guardrails(PolicySet.load([path]), kv)
    assert await g.check(envelope(graph_id="other", tokens_in=90), lifetime_started_at=T0) == []
    assert len(kv.keys) == 3
    (verdict,) = await g.check(envelope(graph_id="g", tokens_in=20), lifetime_started_at=T0)
    assert verdict.observed == {"tenant.sum.tokens_used": 110}


def test_plans_are_memoized_per_selection(rules_file: WriteRules) -> None:
    policies = PolicySet.load([rules_file(rule("a", "lifetime.count > 1"))])
    assert policies.rules_for("t", "g", "n") is policies.rules_for("t", "g", "n")
    assert policies.has_rules and not PolicySet.empty().has_rules


def test_evaluate_accepts_an_activation_of_another_shape(rules_file: WriteRules) -> None:
    policies = PolicySet.load(
        [
            rules_file(
                rule("a", "lifetime.sum.tokens_used > 1"),
                rule("b", "lifetime.nodes[execution.name].count > 0"),
            )
        ]
    )
    hand_made = EvaluationContext(
        tenant_id="t",
        graph_id="g",
        node="n",
        activation={"execution": {"name": "n"}, "lifetime": {"sum": {"tokens_used": 5}}},
    )
    with pytest.raises(PolicyError, match="no such key nodes") as caught:
        policies.evaluate(hand_made)
    assert caught.value.rule == "b"


@pytest.mark.parametrize(
    "epoch",
    [
        T0,
        T0 + 0.5,
        0.0,
        -1.0,
        86399.9999996,  # datetime rounds this up to the next day
        86399.999,
        86400.0 - 1e-9,
        1_700_006_399.9999999,
        253402300799.0,  # 9999-12-31
    ],
)
def test_utc_day_matches_datetime(epoch: float) -> None:
    assert utc_day(epoch) == dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d")


async def test_the_day_key_near_midnight(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    g = Guardrails(PolicySet.load([rules_file(rule("a", "lifetime.count > 100"))]), kv)
    midnight = 1_700_006_400.0  # 2023-11-15T00:00:00Z
    await g.check(envelope(finished_at=midnight - 0.0000001), lifetime_started_at=T0)
    await g.check(envelope(finished_at=midnight - 0.5), lifetime_started_at=T0)
    assert (await kv.get_counters(tenant_day_key("acme", "2023-11-14")))["count"] == 1.0
    assert (await kv.get_counters(tenant_day_key("acme", "2023-11-15")))["count"] == 1.0
