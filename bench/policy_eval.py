"""Guardrail policy evaluation throughput and the latency Guardrails.check adds.

    python bench/policy_eval.py [--repeats 7]

Prints medians over ``--repeats`` runs:

* rule evaluations per second for 1, 20 and 100 rules: CEL only (the
  activation already converted), and through ``PolicySet.evaluate`` (which
  converts the activation into CEL values once per execution, then runs every
  rule);
* the latency ``Guardrails.check`` adds per execution with 20 rules on a
  MemoryKV: three counter updates, building the activation, evaluating.

The contexts are realistic: a lifetime of a 10-node graph well into its run,
and a tenant whose all-time and daily aggregates cover 40 nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cel
import yaml

from adapters.kv.memory import MemoryKV
from sdk.pb import envelope_pb2
from services.control_plane.guardrails import EvaluationContext, Guardrails, PolicySet
from services.control_plane.guardrails._aggregates import usage_of

T0 = 1_700_000_000.0

# Typical conditions, cycled (with varying thresholds) to make N rules.
CONDITIONS = [
    ("lifetime", "lifetime.sum.tokens_used > {n}00000"),
    ("execution", "execution.iteration > {n}0"),
    ("lifetime", "lifetime.sum.cost_usd > {n}.5"),
    ("tenant", "tenant.day.sum.cost_usd > {n}00.0"),
    ("execution", 'execution.model != "" && !(execution.model in ["m1", "m2", "m{n}"])'),
    ("lifetime", "lifetime.nodes[execution.name].count > {n}0"),
    ("lifetime", "lifetime.nodes.search.max.latency_ms > {n}0000.0"),
    ("execution", "execution.latency_ms > {n}0000.0 && execution.attempt > 1"),
    ("lifetime", "lifetime.count > {n}000 || lifetime.elapsed_s > {n}3600.0"),
    ("tenant", "tenant.sum.tokens_used > {n}000000 && tenant.day.count > {n}00"),
]


def write_policies(directory: Path, count: int) -> Path:
    rules = []
    for i in range(count):
        scope, condition = CONDITIONS[i % len(CONDITIONS)]
        rules.append(
            {
                "name": f"rule-{i}",
                "scope": scope,
                "condition": condition.format(n=i + 1),
                "action": ["REJECT_EXECUTION", "PAUSE_LIFETIME", "ABORT_LIFETIME"][i % 3],
            }
        )
    path = directory / f"bench-{count}.yaml"
    document = {"apiVersion": "tickrail/v1", "kind": "GuardrailPolicy", "rules": rules}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def envelope(
    i: int, *, lifetime: str = "lt-bench", nodes: int = 10
) -> envelope_pb2.ExecutionEnvelope:
    header = envelope_pb2.ExecutionHeader(
        name=f"node-{i % nodes}" if i % 7 else "search",
        exec_id=f"exec-{lifetime}-{i}",
        graph_id="research",
        lifetime_id=lifetime,
        tenant_id="acme",
        attempt=1 + (i % 5 == 0),
        iteration=1 + i // nodes,
        status=envelope_pb2.EXECUTION_STATUS_SUCCEEDED,
        kind=envelope_pb2.NODE_KIND_TASK,
    )
    header.finished_at.seconds = int(T0) + i
    return envelope_pb2.ExecutionEnvelope(
        task=envelope_pb2.TaskExecution(
            header=header,
            telemetry=envelope_pb2.PolicyTelemetry(
                tokens_in=800 + i % 300,
                tokens_out=200 + i % 100,
                cost_usd=0.004 * (1 + i % 3),
                latency_ms=900.0 + (i % 50) * 20,
                model="m1" if i % 2 else "m2",
                metrics={"tool_calls": float(i % 4), "retrieved_docs": float(i % 9)},
            ),
        )
    )


def counters_for(envelopes: list[envelope_pb2.ExecutionEnvelope]) -> dict[str, float]:
    add: dict[str, float] = {}
    maximum: dict[str, float] = {}
    for env in envelopes:
        one_add, one_max = usage_of(env).fields()
        for k, v in one_add.items():
            add[k] = add.get(k, 0.0) + v
        for k, v in one_max.items():
            maximum[k] = max(maximum.get(k, v), v)
    return {**add, **maximum}


def realistic_context(policies: PolicySet) -> EvaluationContext:
    lifetime = [envelope(i) for i in range(60)]
    tenant = [envelope(i, lifetime=f"lt-{i % 30}", nodes=40) for i in range(2000)]
    return policies.context(
        lifetime[-1],
        lifetime=counters_for(lifetime),
        tenant=counters_for(tenant),
        day=counters_for(tenant[-400:]),
        elapsed_s=1800.0,
    )


def median_rate(fn: Callable[[], Any], per_call: int, repeats: int, seconds: float = 0.3) -> float:
    """Median operations per second over ``repeats`` timed batches."""
    calls = 1
    while True:  # size a batch to take about `seconds`
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start > seconds / 4:
            break
        calls *= 2
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rates.append(calls * per_call / (time.perf_counter() - start))
    return statistics.median(rates)


async def check_latency(policies: PolicySet, calls: int, repeats: int) -> dict[str, float]:
    """Median microseconds per execution: whole check, and its three parts."""
    parts: dict[str, list[float]] = {"check": [], "aggregates": [], "context": [], "evaluate": []}
    for r in range(repeats):
        async with MemoryKV() as kv:
            guardrails = Guardrails(policies, kv, clock=lambda: T0 + 1800)
            # Warm the tenant aggregate so it has many nodes, as in production.
            for i in range(400):
                await guardrails.record(envelope(i, lifetime=f"warm-{i % 20}", nodes=40), now=T0)
            envelopes = [envelope(i, lifetime=f"lt-{r}") for i in range(calls)]
            start = time.perf_counter()
            for env in envelopes:
                await guardrails.check(env, lifetime_started_at=T0)
            parts["check"].append((time.perf_counter() - start) / calls * 1e6)

            aggregates = context = evaluate = 0.0
            for env in envelopes:
                t0 = time.perf_counter()
                lt, tn, day = await guardrails.record(env, now=T0 + 1800)
                t1 = time.perf_counter()
                ctx = guardrails.context_for(env, lifetime=lt, tenant=tn, day=day, elapsed_s=1800.0)
                t2 = time.perf_counter()
                policies.evaluate(ctx)
                t3 = time.perf_counter()
                aggregates, context, evaluate = (
                    aggregates + t1 - t0,
                    context + t2 - t1,
                    evaluate + t3 - t2,
                )
            parts["aggregates"].append(aggregates / calls * 1e6)
            parts["context"].append(context / calls * 1e6)
            parts["evaluate"].append(evaluate / calls * 1e6)
    return {name: statistics.median(values) for name, values in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=500, help="executions per check-latency run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sets = {n: PolicySet.load([write_policies(Path(tmp), n)]) for n in (1, 20, 100)}

    print(f"repeats={args.repeats} (medians)\n")
    columns = ("CEL only evals/s", "evaluate() evals/s", "evaluate() µs/exec")
    print(f"{'rules':>5}  {columns[0]:>17}  {columns[1]:>19}  {columns[2]:>19}")
    for n, policies in sets.items():
        context = realistic_context(policies)
        rules = policies.rules_for(context.tenant_id, context.graph_id, context.node)
        assert len(rules) == n
        activation = cel.Context(variables=dict(context.activation))

        def cel_only(rules: Any = rules, activation: Any = activation) -> None:
            for rule in rules:
                rule.condition.evaluate(activation)

        def full(policies: PolicySet = policies, context: EvaluationContext = context) -> None:
            policies.evaluate(context)

        cel_rate = median_rate(cel_only, n, args.repeats)
        full_rate = median_rate(full, n, args.repeats)
        print(f"{n:>5}  {cel_rate:>17,.0f}  {full_rate:>19,.0f}  {n / full_rate * 1e6:>19.1f}")

    latency = asyncio.run(check_latency(sets[20], args.calls, args.repeats))
    print("\nGuardrails.check with 20 rules on MemoryKV, µs per execution:")
    print(f"  total      {latency['check']:8.1f}")
    print(f"  aggregates {latency['aggregates']:8.1f}  (3 update_counters)")
    print(f"  context    {latency['context']:8.1f}  (counters -> activation)")
    print(f"  evaluate   {latency['evaluate']:8.1f}  (CEL conversion + 20 rules)")


if __name__ == "__main__":
    main()
