"""CEL conditions: the sandbox, the activation's shape, missing keys, observed values."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import T0, MakeEnvelope, WriteRules, rule

from tickrail.adapters.kv.memory import MemoryKV
from tickrail.sdk.errors import PolicyError
from tickrail.sdk.pb import envelope_pb2
from tickrail.services.control_plane.guardrails import Guardrails, PolicySet


async def fired(
    path: Path, kv: MemoryKV, *envelopes: envelope_pb2.ExecutionEnvelope
) -> list[list[str]]:
    guardrails = Guardrails(PolicySet.load([path]), kv, clock=lambda: T0 + 30)
    return [[v.rule for v in await guardrails.check(e, lifetime_started_at=T0)] for e in envelopes]


# ---- the sandbox: refused at load, before anything runs -----------------------------------


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ('__import__("os") == null', "unknown function(s) '__import__'"),
        ('open("/etc/passwd") == ""', "unknown function(s) 'open'"),
        ('open("{canary}", "w") == null', "unknown function(s) 'open'"),
        ('exec("import os") == null', "unknown function(s) 'exec'"),
        ('eval("1") == 1', "unknown function(s) 'eval'"),
        ('getattr(execution, "__class__") == null', "unknown function(s) 'getattr'"),
        ('execution.model.format("x") == ""', "unknown function(s) 'format'"),
        ('os.system("touch {canary}") == 0', "unknown function(s) 'system'"),
        ('os.environ["HOME"] == ""', "unknown variable(s) 'os'"),
        ("__builtins__ == null", "unknown variable(s) '__builtins__'"),
        ("execution.__class__ == null", "no such key __class__"),
        ("lifetime.__dict__.size() > 0", "no such key __dict__"),
        ('execution.name.__class__ == ""', "condition:"),
        ("size(execution.__globals__) > 0", "no such key __globals__"),
    ],
)
def test_conditions_cannot_reach_python(
    rules_file: WriteRules, tmp_path: Path, condition: str, reason: str
) -> None:
    canary = tmp_path / "canary"
    path = rules_file(rule("escape", condition.replace("{canary}", str(canary)), scope="tenant"))
    with pytest.raises(PolicyError) as caught:
        PolicySet.load([path])
    assert reason in str(caught.value) and caught.value.rule == "escape"
    assert not canary.exists()


async def test_the_activation_holds_only_plain_values(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule(
            "types",
            "type(execution) == map && type(execution.name) == string && "
            "type(execution.tokens_used) == int && type(execution.cost_usd) == double && "
            "type(lifetime.nodes) == map",
        )
    )
    assert await fired(path, kv, envelope()) == [["types"]]


# ---- activation shape and types -------------------------------------------------------------


async def test_execution_fields(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule(
            "fields",
            'execution.name == "search" && execution.kind == "plan" && '
            'execution.status == "RETRYING" && execution.attempt == 2 && '
            'execution.iteration == 3 && execution.tenant_id == "acme" && '
            'execution.graph_id == "graph" && execution.lifetime_id == "lt-1" && '
            "execution.tokens_in == 10 && execution.tokens_out == 5 && "
            "execution.tokens_used == 15 && execution.cost_usd == 0.5 && "
            'execution.latency_ms == 12.5 && execution.model == "m" && '
            "execution.metrics.docs == 4.0",
            scope="execution",
        )
    )
    env = envelope(
        "search",
        kind="plan",
        status=envelope_pb2.EXECUTION_STATUS_RETRYING,
        attempt=2,
        iteration=3,
        tokens_in=10,
        tokens_out=5,
        cost_usd=0.5,
        latency_ms=12.5,
        model="m",
        metrics={"docs": 4.0},
    )
    assert await fired(path, kv, env) == [["fields"]]


async def test_elapsed_time_is_wall_time_since_the_lifetime_started(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule("slow", "lifetime.elapsed_s >= 30.0"), rule("never", "lifetime.elapsed_s > 31.0")
    )
    assert await fired(path, kv, envelope()) == [["slow"]]


async def test_integer_and_double_arithmetic(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule(
            "avg",
            "lifetime.sum.tokens_used / lifetime.count == 150 && "
            "lifetime.sum.cost_usd / double(lifetime.count) > 0.2",
        )
    )
    assert await fired(
        path, kv, envelope(tokens_in=100, cost_usd=0.1), envelope(tokens_in=200, cost_usd=0.4)
    ) == [[], ["avg"]]


# ---- missing keys read 0 ------------------------------------------------------------------


async def test_a_metric_never_reported_reads_zero(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule(
            "zeros",
            "lifetime.sum.tool_calls == 0.0 && lifetime.max.tool_calls == 0.0 && "
            'lifetime.nodes["never-ran"].count == 0 && '
            "lifetime.nodes.never_ran.sum.tokens_used == 0 && "
            "tenant.day.sum.tool_calls == 0.0 && execution.metrics.tool_calls == 0.0",
            scope="tenant",
        ),
        rule("reported", "lifetime.sum.tool_calls > 2.0"),
    )
    assert await fired(path, kv, envelope(), envelope(metrics={"tool_calls": 3.0})) == [
        ["zeros"],
        ["reported"],
    ]


async def test_keys_computed_at_run_time_are_iterated_or_guarded(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule("any-node-busy", "lifetime.nodes.exists(n, lifetime.nodes[n].count >= 2)"),
        rule(
            "error-metrics",
            'execution.metrics.exists(m, m.startsWith("errors.") && execution.metrics[m] > 0.0)',
            scope="execution",
        ),
        rule(
            "guarded",
            '"retrieved" in execution.metrics && execution.metrics["retrieved"] > 1.0',
            scope="execution",
        ),
    )
    assert await fired(
        path,
        kv,
        envelope("a"),
        envelope("b", metrics={"errors.timeout": 0.0}),
        envelope("a", metrics={"errors.timeout": 1.0, "retrieved": 5.0}),
    ) == [[], [], ["any-node-busy", "error-metrics", "guarded"]]


async def test_has_is_true_for_names_written_literally(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule("metric", "has(lifetime.sum.tool_calls) && lifetime.sum.tool_calls == 0.0"),
        rule("node", "has(lifetime.nodes.b) && lifetime.nodes.b.count == 0"),
    )
    assert await fired(path, kv, envelope("a")) == [["metric", "node"]]


async def test_evaluation_errors_become_policy_errors(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    # Short-circuiting hides the division from the load-time sample (attempt 1).
    path = rules_file(rule("fragile", "execution.attempt > 1 && lifetime.count / 0 > 1"))
    guardrails = Guardrails(PolicySet.load([path]), kv)
    assert await guardrails.check(envelope(), lifetime_started_at=T0) == []
    with pytest.raises(PolicyError, match="division by zero") as caught:
        await guardrails.check(envelope(attempt=2), lifetime_started_at=T0)
    assert (caught.value.rule, caught.value.line, caught.value.file) == ("fragile", 6, str(path))


# ---- observed values -----------------------------------------------------------------------


async def test_verdicts_report_the_values_the_condition_read(
    rules_file: WriteRules, envelope: MakeEnvelope, kv: MemoryKV
) -> None:
    path = rules_file(
        rule(
            "budget",
            'lifetime.sum.tokens_used > 100 && execution.model.startsWith("gpt") && '
            "lifetime.nodes[execution.name].count >= 1",
        )
    )
    guardrails = Guardrails(PolicySet.load([path]), kv)
    (verdict,) = await guardrails.check(
        envelope("writer", tokens_in=150, model="gpt-x"), lifetime_started_at=T0
    )
    assert verdict.observed == {
        "lifetime.sum.tokens_used": 150,
        "execution.model": "gpt-x",
        "lifetime.nodes[execution.name].count": 1,
    }
    decision = verdict.to_proto("exec-9")
    assert decision.exec_id == "exec-9" and decision.rule == "budget"
    assert dict(decision.observed) == {
        "lifetime.sum.tokens_used": 150.0,
        "lifetime.nodes[execution.name].count": 1.0,
    }
    assert decision.observed_json == '{"execution.model": "gpt-x"}'
