"""Guardrail policy evaluation throughput and the latency Guardrails.check adds.

    python bench/policy_eval.py [--repeats 7] [--calls 500]

Prints medians over ``--repeats`` runs:

* per execution, for 1, 20 and 100 rules: evaluating the rules from an
  execution's counters as ``Guardrails.check`` does (only the leaves the rules
  read, converted into CEL values once), against evaluating them as written on
  the whole activation (what every check did before the leaf rewrite); and the
  rate of the compiled conditions alone, on an already converted context;
* the latency ``Guardrails.check`` adds per execution on a MemoryKV, with no
  rules, with 20 rules none of which matches the execution, and with 1, 20 and
  100 rules; for 20 rules, split into recording (keys, fields, three counter
  updates) and evaluating.

The contexts are realistic: a lifetime of a 10-node graph well into its run,
and a tenant whose all-time and daily aggregates cover 40 nodes. Run ``uptime``
alongside: the numbers move with the machine's load.
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

from tickrail.adapters.kv.memory import MemoryKV
from tickrail.sdk.pb import envelope_pb2
from tickrail.services.control_plane.guardrails import Guardrails, PolicySet
from tickrail.services.control_plane.guardrails._aggregates import usage_of
from tickrail.services.control_plane.guardrails._leaves import Inputs

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


def write_policies(directory: Path, count: int, graphs: list[str] | None = None) -> Path:
    rules = []
    for i in range(count):
        scope, condition = CONDITIONS[i % len(CONDITIONS)]
        rule: dict[str, Any] = {
            "name": f"rule-{i}",
            "scope": scope,
            "condition": condition.format(n=i + 1),
            "action": ["REJECT_EXECUTION", "PAUSE_LIFETIME", "ABORT_LIFETIME"][i % 3],
        }
        if graphs is not None:
            rule["match"] = {"graphs": graphs}
        rules.append(rule)
    path = directory / f"bench-{count}{'-' + '-'.join(graphs) if graphs else ''}.yaml"
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


def realistic_counters() -> tuple[envelope_pb2.ExecutionEnvelope, dict[str, dict[str, float]]]:
    """An execution late in a lifetime, and its lifetime, tenant and day counters."""
    lifetime = [envelope(i) for i in range(60)]
    tenant = [envelope(i, lifetime=f"lt-{i % 30}", nodes=40) for i in range(2000)]
    return lifetime[-1], {
        "lifetime": counters_for(lifetime),
        "tenant": counters_for(tenant),
        "day": counters_for(tenant[-400:]),
    }


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


async def check_latency(policies: PolicySet, calls: int, repeats: int) -> float:
    """Median microseconds ``Guardrails.check`` takes per execution."""
    runs = []
    for r in range(repeats):
        async with MemoryKV() as kv:
            guardrails = await warmed(policies, kv)
            envelopes = [envelope(i, lifetime=f"lt-{r}") for i in range(calls)]
            start = time.perf_counter()
            for env in envelopes:
                await guardrails.check(env, lifetime_started_at=T0)
            runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs)


async def check_parts(policies: PolicySet, calls: int, repeats: int) -> tuple[float, float]:
    """Median microseconds per execution: recording, and evaluating from the counters."""
    recording, evaluating = [], []
    for r in range(repeats):
        async with MemoryKV() as kv:
            guardrails = await warmed(policies, kv)
            record = evaluate = 0.0
            for i in range(calls):
                env = envelope(i, lifetime=f"lt-{r}")
                t0 = time.perf_counter()
                lifetime, tenant, day = await guardrails.record(env, now=T0 + 1800)
                t1 = time.perf_counter()
                policies.evaluate_counters(
                    env, lifetime=lifetime, tenant=tenant, day=day, elapsed_s=1800.0
                )
                t2 = time.perf_counter()
                record, evaluate = record + t1 - t0, evaluate + t2 - t1
            recording.append(record / calls * 1e6)
            evaluating.append(evaluate / calls * 1e6)
    return statistics.median(recording), statistics.median(evaluating)


async def warmed(policies: PolicySet, kv: MemoryKV) -> Guardrails:
    """Guardrails on ``kv`` whose tenant aggregate already has many nodes, as in production."""
    guardrails = Guardrails(policies, kv, clock=lambda: T0 + 1800)
    for i in range(400):
        await guardrails.record(envelope(i, lifetime=f"warm-{i % 20}", nodes=40), now=T0)
    return guardrails


def as_written(policies: PolicySet, env: envelope_pb2.ExecutionEnvelope, counters: Any) -> None:
    """The evaluation before the leaf rewrite: the whole activation, conditions as written."""
    context = policies.context(env, elapsed_s=1800.0, **counters)
    rules = policies.rules_for(context.tenant_id, context.graph_id, context.node)
    roots = frozenset[str]().union(*(rule.condition.roots for rule in rules))
    activation = cel.Context(variables={root: context.activation[root] for root in roots})
    for rule in rules:
        rule.condition.evaluate(activation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=500, help="executions per check-latency run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sets = {n: PolicySet.load([write_policies(Path(tmp), n)]) for n in (1, 20, 100)}
        elsewhere = PolicySet.load([write_policies(Path(tmp), 20, graphs=["elsewhere"])])

    print(f"repeats={args.repeats} (medians)\n")
    print("Evaluating the rules for one execution from its counters, µs per execution:")
    columns = ("check path", "as written", "CEL only evals/s")
    print(f"{'rules':>5}  {columns[0]:>10}  {columns[1]:>10}  {columns[2]:>16}")
    env, counters = realistic_counters()
    for n, policies in sets.items():
        header = env.task.header
        rules = policies.rules_for(header.tenant_id, header.graph_id, header.name)
        assert len(rules) == n and all(rule.condition.flattened for rule in rules)
        inputs = Inputs(env, (counters["lifetime"], counters["tenant"], counters["day"]), 1800.0)
        leaves = {var: leaf.getter(inputs) for rule in rules for var, leaf in rule.condition.leaves}
        activation = cel.Context(variables=leaves)

        def cel_only(rules: Any = rules, activation: Any = activation) -> None:
            for rule in rules:
                rule.condition.evaluate_flat(activation)

        def check_path(policies: PolicySet = policies) -> None:
            policies.evaluate_counters(env, elapsed_s=1800.0, **counters)

        def written(policies: PolicySet = policies) -> None:
            as_written(policies, env, counters)

        fast = 1e6 / median_rate(check_path, 1, args.repeats)
        slow = 1e6 / median_rate(written, 1, args.repeats)
        cel_rate = median_rate(cel_only, n, args.repeats)
        print(f"{n:>5}  {fast:>10.1f}  {slow:>10.1f}  {cel_rate:>16,.0f}")

    print("\nGuardrails.check on MemoryKV, µs per execution:")
    latency = {
        "no rules": PolicySet.empty(),
        "20 rules, none matching": elsewhere,
        **{f"{n} rule{'s' if n > 1 else ''}": policies for n, policies in sets.items()},
    }
    for label, policies in latency.items():
        micros = asyncio.run(check_latency(policies, args.calls, args.repeats))
        print(f"  {label:<25} {micros:8.1f}")
    record, evaluate = asyncio.run(check_parts(sets[20], args.calls, args.repeats))
    print("  20 rules, of which:")
    print(f"    recording  {record:8.1f}  (keys, fields, 3 update_counters)")
    print(f"    evaluating {evaluate:8.1f}  (13 leaves to CEL values, 20 rules)")


if __name__ == "__main__":
    main()
