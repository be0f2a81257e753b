"""Starts lifetimes of the fault graph on a running deployment and checks their outcome:
the right terminal state, nothing lost, nothing run twice, replay OK, budgets exact."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from tickrail.adapters import Message, open_bus, open_store
from tickrail.adapters.store.base import StateStore
from tickrail.sdk._payload import decode_bytes, encode
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.control_plane.replay import replay_lifetime
from tickrail.services.topics import Topics

from .fault_graph import BRANCHES, TOKENS, graph

BUDGET = 1000  # tokens; the policy aborts a lifetime that spends more
TERMINAL = {"completed", "failed", "aborted"}
#: per lifetime: started?, executions recorded, kind of the last event
Progress = dict[str, tuple[bool, int, str]]
POLICY = f"""\
apiVersion: tickrail/v1
kind: GuardrailPolicy
rules:
  - name: budget
    scope: lifetime
    condition: lifetime.sum.tokens_used > {BUDGET}
    action: ABORT_LIFETIME
"""


@dataclass(frozen=True)
class Plan:
    """One lifetime to run, and what it must end as."""

    lifetime_id: str
    rounds: int
    sleep: float

    @property
    def over_budget(self) -> bool:
        return self.rounds * len(BRANCHES) * TOKENS > BUDGET

    @property
    def crossing(self) -> int:
        """Tokens counted when the budget rule fires: the first task past the budget."""
        return (BUDGET // TOKENS + 1) * TOKENS


def plans(count: int = 20, over_budget: int = 4, rounds: int = 3, sleep: float = 0.4) -> list[Plan]:
    run = uuid.uuid4().hex[:8]
    out = [Plan(f"f{run}-{i:02d}", rounds, sleep) for i in range(count - over_budget)]
    out += [Plan(f"f{run}-b{i:02d}", 10, sleep / 2) for i in range(over_budget)]
    return out


class Driver:
    def __init__(self, bus_url: str, store_url: str, kv_url: str, kv_prefix: str, topics: Topics):
        self.bus_url, self.store_url = bus_url, store_url
        self.kv_url, self.kv_prefix = kv_url, kv_prefix
        self.topics = topics

    async def start(self, lifetimes: list[Plan], tenant: str) -> None:
        """Publish the start commands and wait until every lifetime has started
        (a start command still on a broker that loses its data is lost with it)."""
        messages = []
        for p in lifetimes:
            command = pb.LifetimeCommand(
                command_id=f"start-{p.lifetime_id}",
                lifetime_id=p.lifetime_id,
                tenant_id=tenant,
                start=pb.StartLifetime(
                    lifetime_id=p.lifetime_id,
                    tenant_id=tenant,
                    graph=graph.spec,
                    input=encode({"rounds": p.rounds, "sleep": p.sleep}),
                ),
            )
            messages.append(
                Message(self.topics.commands(), p.lifetime_id, command.SerializeToString())
            )
        async with open_bus(self.bus_url) as bus:
            await bus.publish(messages)
        await self.wait(lifetimes, lambda s: all(v[0] for v in s.values()), "start", 120)

    async def progress(self, lifetimes: list[Plan]) -> Progress:
        """Per lifetime: started?, executions recorded, last event kind."""
        out: dict[str, tuple[bool, int, str]] = {}
        async with open_store(self.store_url) as store:
            for p in lifetimes:
                events = await store.events(p.lifetime_id)
                executions = await store.executions(p.lifetime_id)
                out[p.lifetime_id] = (
                    bool(events),
                    len(executions),
                    events[-1].kind if events else "",
                )
        return out

    async def wait(
        self, lifetimes: list[Plan], done: Callable[[Progress], bool], what: str, timeout: float
    ) -> float:
        """Poll the store until ``done(progress)``; returns the seconds it took."""
        started = time.monotonic()
        while True:
            state = await self.progress(lifetimes)
            if done(state):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                stuck = {k: v for k, v in state.items() if v[2] not in TERMINAL}
                raise AssertionError(f"{what}: not done within {timeout:.0f}s; {stuck}")
            await asyncio.sleep(0.25)

    async def mid_run(self, lifetimes: list[Plan]) -> None:
        """Wait until half the lifetimes are well under way."""
        await self.wait(
            lifetimes, lambda s: sum(v[1] >= 2 for v in s.values()) >= len(s) // 2, "mid-run", 120
        )

    async def finished(self, lifetimes: list[Plan], timeout: float = 180) -> float:
        return await self.wait(
            lifetimes, lambda s: all(v[2] in TERMINAL for v in s.values()), "finish", timeout
        )

    async def check(self, lifetimes: list[Plan], tenant: str) -> None:
        """Every lifetime ended as it must, with each node run once per iteration,
        replay OK, and the guardrail aggregates exact."""
        problems: list[str] = []
        spent = 0
        client = aioredis.Redis.from_url(self.kv_url)
        try:
            async with open_store(self.store_url) as store:
                for p in lifetimes:
                    problems += await self._check_one(store, client, p)
                    spent += p.crossing if p.over_budget else p.rounds * len(BRANCHES) * TOKENS
            tenant_sum = await client.hget(
                f"{self.kv_prefix}guardrails:tenant:{tenant}", "sum/tokens_used"
            )
        finally:
            await client.aclose()
        if tenant_sum is None or float(tenant_sum) != spent:
            problems.append(f"tenant {tenant}: aggregate {tenant_sum!r} tokens, spent {spent}")
        assert not problems, "\n".join(problems)

    async def _check_one(self, store: StateStore, client: aioredis.Redis, p: Plan) -> list[str]:
        lid = p.lifetime_id
        events = [pb.LifetimeEvent.FromString(r.body) for r in await store.events(lid)]
        records = await store.executions(lid)
        final = [r for r in records if r.status != pb.EXECUTION_STATUS_RETRYING]
        problems = []
        envelopes = [pb.ExecutionEnvelope.FromString(r.envelope) for r in final]
        runs = Counter(
            (r.name, (e.plan if e.WhichOneof("execution") == "plan" else e.task).header.iteration)
            for r, e in zip(final, envelopes, strict=True)
        )
        twice = [k for k, n in runs.items() if n > 1]
        if twice:
            problems.append(f"{lid}: ran twice: {twice}")
        kinds = [e.WhichOneof("kind") for e in events]
        lifetime_sum = await client.hget(
            f"{self.kv_prefix}guardrails:lifetime:{lid}", "sum/tokens_used"
        )
        if p.over_budget:
            if "aborted" not in kinds:
                problems.append(f"{lid}: not aborted by the budget: {kinds[-3:]}")
            fired = [e.guardrail for e in events if e.WhichOneof("kind") == "guardrail"]
            seen = [g.observed.get("lifetime.sum.tokens_used") for g in fired if g.rule == "budget"]
            if seen != [p.crossing]:
                problems.append(f"{lid}: budget fired at {seen}, expected once at {p.crossing}")
            expected_sum = p.crossing
        else:
            if kinds[-1:] != ["completed"]:
                problems.append(f"{lid}: ended {kinds[-1:]}, expected completed")
            else:
                done = events[-1].completed.output
                output = decode_bytes(done.content_type, done.inline)
                if output.get("rounds") != p.rounds:
                    problems.append(f"{lid}: output {output}")
            expected = {("rounds", i) for i in range(1, p.rounds + 2)}
            expected |= {(b, i) for b in BRANCHES for i in range(1, p.rounds + 1)}
            if set(runs) != expected:
                problems.append(f"{lid}: runs {sorted(runs)} != {sorted(expected)}")
            expected_sum = p.rounds * len(BRANCHES) * TOKENS
        if lifetime_sum is None or float(lifetime_sum) != expected_sum:
            problems.append(f"{lid}: aggregate {lifetime_sum!r} tokens, expected {expected_sum}")
        report = await replay_lifetime(store, lid)
        if not report.ok:
            problems.append(f"{lid}: replay diverged: {report.divergence}")
        return problems
