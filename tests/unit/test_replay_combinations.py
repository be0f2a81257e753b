"""Replay is OK whatever mix of human answers, pauses, resumes and retries a lifetime saw.

Each case runs a lifetime on the in-process Runtime: branches that ask a
person (answered in a chosen order, several prompts open at once, asking again
in a later round), branches that fail and are retried, a guardrail that
pauses on some executions (including WAITING and RETRYING ones), and pause
commands sent while a branch waits. The driver reacts to the lifetime's
state as rebuilt from the store until it completes; then the log must replay
OK, every event id must be unique, and every input must have exactly one
final execution.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tickrail.sdk import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Retry,
    Send,
    Task,
    TaskContext,
    final,
    join,
    normal,
    parallel,
)
from tickrail.sdk._payload import encode
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.control_plane.fork import fork_lifetime
from tickrail.services.control_plane.replay import replay_lifetime
from tickrail.services.control_plane.state import LifetimeState
from tickrail.services.runtime import Runtime

BRANCHES = ("b0", "b1", "b2")
FINAL = frozenset(
    {pb.EXECUTION_STATUS_SUCCEEDED, pb.EXECUTION_STATUS_FAILED, pb.EXECUTION_STATUS_TIMED_OUT}
)


class Fan(Plan):
    """Fans out to every branch, once per round; the config travels in the input."""

    async def plan(self, ctx: PlanContext) -> Next:
        return Next({b: ctx.input for b in BRANCHES})


class Branch(Task):
    """Does what the config says for this branch and round: ask, fail once, spend."""

    retry = Retry(max_attempts=3, backoff=0.001)

    def __init__(self, name: str) -> None:
        self.name = name

    def todo(self, ctx: TaskContext) -> set[str]:
        return set(ctx.input["rounds"][ctx.input["round"]].get(self.name, []))

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        todo = self.todo(ctx)
        if "spend" in todo:
            ctx.record_usage(tokens_in=900, tokens_out=100)
        if "flaky" in todo and ctx.attempt == 1:
            raise ConnectionError("transient")
        answer = ctx.ask_human(f"{self.name}?") if "ask" in todo else None
        return {"branch": self.name, "answer": answer, "config": ctx.input}


class Join(Plan):
    """Joins the branches; loops for another round while the config has one."""

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        config = ctx.upstream[0].value["config"]
        done = ctx.iteration
        if done < len(config["rounds"]):
            return Next({"again": {**config, "round": done}})
        return Finish([u.value["answer"] for u in ctx.upstream])


class Again(Task):
    async def run(self, ctx: TaskContext) -> Any:
        return ctx.input


def combo_graph() -> AgentGraph:
    return AgentGraph(
        "combo",
        version="1.0.0",
        entry="fan",
        nodes=[Fan(), *(Branch(b) for b in BRANCHES), Join(), Again()],
        edges=[
            parallel("fan", list(BRANCHES)),
            join(list(BRANCHES), "join"),
            normal("join", "again"),
            normal("again", "fan"),
            final("join"),
        ],
    )


class DagFan(Plan):
    """Fans out to one Task as a DAG of sends: b1 after b0, b3 after b1 and b2."""

    name = "fan"

    async def plan(self, ctx: PlanContext) -> Next:
        after = {"b1": ["b0"], "b3": ["b1", "b2"]}
        return Next(
            [
                Send("work", {**ctx.input, "branch": b}, id=b, after=after.get(b, []))
                for b in DAG_BRANCHES
            ]
        )


class DagWork(Branch):
    """One Task for every send; the send's id says what to do."""

    def todo(self, ctx: TaskContext) -> set[str]:
        return set(ctx.input["rounds"][0].get(ctx.input["branch"], []))


class DagJoin(Plan):
    name = "join"

    async def plan(self, ctx: PlanContext) -> Finish:
        return Finish([u.value["answer"] for u in ctx.upstream])


DAG_BRANCHES = ("b0", "b1", "b2", "b3")


def dag_graph() -> AgentGraph:
    return AgentGraph(
        "combo_dag",
        version="1.0.0",
        entry="fan",
        nodes=[DagFan(), DagWork("work"), DagJoin()],
        edges=[parallel("fan", ["work"]), join(["work"], "join"), final("join")],
    )


@dataclass
class Case:
    """One lifetime: what each branch does per round, and how the driver answers."""

    rounds: list[dict[str, list[str]]]
    #: which open prompt to answer first: "first", "last" or "random"
    order: str = "first"
    #: pause the lifetime (a command) before answering, resume after
    pause_before_answer: bool = False
    #: pause right after the start command
    pause_at_start: bool = False
    seed: int = 0


CASES = {
    "three prompts answered last first": Case([{b: ["ask"] for b in BRANCHES}], order="last"),
    "three prompts answered in random order": Case(
        [{b: ["ask"] for b in BRANCHES}], order="random", seed=7
    ),
    "ask again in a later round": Case(
        [{"b0": ["ask"], "b1": ["ask"]}, {"b1": ["ask"], "b2": ["ask"]}], order="last"
    ),
    "guardrail pause then resume": Case([{"b1": ["spend"]}]),
    "guardrail pause on a waiting execution": Case([{"b0": ["spend", "ask"], "b2": ["ask"]}]),
    "retried attempts": Case([{"b0": ["flaky"], "b2": ["flaky"]}, {"b1": ["flaky"]}]),
    "retried then asks, answered": Case([{"b0": ["flaky", "ask"], "b1": ["ask"]}], order="last"),
    "guardrail pause on a retried attempt": Case([{"b1": ["flaky", "spend"]}]),
    "plain pause and resume while a branch waits": Case(
        [{"b0": ["ask"], "b1": ["ask"]}], pause_before_answer=True
    ),
    "pause right after start": Case([{"b0": ["flaky"]}], pause_at_start=True),
    "everything at once": Case(
        [
            {"b0": ["ask", "spend"], "b1": ["flaky", "ask"], "b2": ["flaky", "spend"]},
            {"b0": ["flaky"], "b1": ["ask"], "b2": ["spend", "ask"]},
        ],
        order="random",
        pause_before_answer=True,
        pause_at_start=True,
        seed=3,
    ),
}


def random_cases(count: int) -> dict[str, Case]:
    """Seeded random mixes, so cases nobody thought of get tried too."""
    rng = random.Random(8)
    out = {}
    for n in range(count):
        rounds = [
            {
                b: rng.sample(["ask", "flaky", "spend"], rng.randint(0, 3))
                for b in BRANCHES
                if rng.random() < 0.8
            }
            for _ in range(rng.randint(1, 3))
        ]
        out[f"random mix {n}"] = Case(
            rounds,
            order=rng.choice(["first", "last", "random"]),
            pause_before_answer=rng.random() < 0.4,
            pause_at_start=rng.random() < 0.3,
            seed=n,
        )
    return out


ALL = {**CASES, **random_cases(12)}

POLICY = """apiVersion: tickrail/v1
kind: GuardrailPolicy
rules:
  - name: big-spender
    scope: execution
    condition: execution.tokens_used > 500
    action: PAUSE_LIFETIME
    message: a person should look at this
"""


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("policy") / "pause.yaml"
    path.write_text(POLICY)
    return str(path)


def in_flight(state: LifetimeState) -> set[str]:
    """Inputs dispatched whose result has not been recorded yet."""
    asked = {i.input_id for i in state.waiting.values()}
    held = {_header(e).input_id for e in state.deferred}
    return set(state.pending) - asked - held


def _header(envelope: pb.ExecutionEnvelope) -> pb.ExecutionHeader:
    return (
        envelope.task.header if envelope.WhichOneof("execution") == "task" else envelope.plan.header
    )


class Changes:
    """Wakes the driver whenever the lifetime records an event (no polling)."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def on_event(self, _event: pb.LifetimeEvent) -> None:
        self.changed.set()

    async def until(
        self, rt: Runtime, lifetime_id: str, done: Callable[[LifetimeState, list[str]], bool]
    ) -> LifetimeState:
        """The state rebuilt from the store, once ``done(state, event_ids)`` holds."""
        assert rt.control_plane is not None
        async with asyncio.timeout(30):
            while True:
                self.changed.clear()  # before reading: a later event wakes us again
                records = await rt.store.events(lifetime_id)
                state = await rt.control_plane.load(lifetime_id)
                ids = [pb.LifetimeEvent.FromString(r.body).event_id for r in records]
                if state is not None and done(state, ids):
                    return state
                await self.changed.wait()


def settled(state: LifetimeState, _ids: list[str]) -> bool:
    """Ended, or nothing running and something to do (answer or resume)."""
    return state.terminal or (not in_flight(state) and (state.held or bool(state.waiting)))


async def drive(rt: Runtime, graph: AgentGraph, case: Case) -> str:
    changes = Changes()
    config = {"rounds": case.rounds, "round": 0}
    lifetime_id = await rt.start_lifetime(graph, config, on_event=changes.on_event)
    if case.pause_at_start:
        await rt.send(
            pb.LifetimeCommand(
                command_id="c0", lifetime_id=lifetime_id, pause=pb.LifetimePaused(reason="look")
            )
        )
    await steer(rt, lifetime_id, case, changes, "c")
    return lifetime_id


async def steer(rt: Runtime, lifetime_id: str, case: Case, changes: Changes, prefix: str) -> None:
    """Answer, pause and resume as the case says until the lifetime ends.

    Every command it sends applies (an answer to a waiting execution, a pause
    of a lifetime not held, a resume of a held one), so it waits for each.
    """
    rng = random.Random(case.seed)
    sent = 0

    async def command(**kind: Any) -> None:
        """Send a command and wait until its event is in the log (it was applied)."""
        nonlocal sent
        sent += 1
        command_id = f"{prefix}{sent}"
        await rt.send(pb.LifetimeCommand(command_id=command_id, lifetime_id=lifetime_id, **kind))
        await changes.until(
            rt, lifetime_id, lambda _s, ids: any(i.endswith(f"/{command_id}") for i in ids)
        )

    for _ in range(100):
        state = await changes.until(rt, lifetime_id, settled)
        if state.terminal:
            return
        if state.waiting:
            asked = list(state.waiting)
            pick = {"first": asked[0], "last": asked[-1]}.get(case.order) or rng.choice(asked)
            if case.pause_before_answer and not state.held:
                await command(pause=pb.LifetimePaused(reason="hold"))
            await command(resume=pb.LifetimeResumed(exec_id=pick, human_input=encode(pick)))
        else:
            await command(resume=pb.LifetimeResumed(reason="go"))
    raise AssertionError(f"lifetime {lifetime_id} did not finish after 100 steps")


async def check_log(rt: Runtime, lifetime_id: str, case: Case | None) -> None:
    """Replay OK, unique ids, one final execution per input (and, for a lifetime
    that is not a fork, one question per ``ask``)."""
    report = await replay_lifetime(rt.store, lifetime_id)
    assert report.ok, report.divergence
    events = [pb.LifetimeEvent.FromString(r.body) for r in await rt.store.events(lifetime_id)]
    assert events[-1].WhichOneof("kind") == "completed", events[-1]
    ids = Counter(e.event_id for e in events)
    assert max(ids.values()) == 1, [i for i, c in ids.items() if c > 1]
    # The only routing record that names no execution is the start's.
    anonymous = [e for e in events if e.WhichOneof("kind") == "routed" and not e.routed.exec_id]
    assert len(anonymous) == 1

    headers = [
        _header(pb.ExecutionEnvelope.FromString(r.envelope))
        for r in await rt.store.executions(lifetime_id)
    ]
    assert len({h.exec_id for h in headers}) == len(headers)
    dispatched = {
        d.input_id for e in events if e.WhichOneof("kind") == "routed" for d in e.routed.dispatched
    }
    finals = Counter(h.input_id for h in headers if h.status in FINAL)
    asked = Counter(h.input_id for h in headers if h.status == pb.EXECUTION_STATUS_WAITING)
    # every input ran to exactly one final execution, or asked a person once
    assert set(finals) | set(asked) == dispatched
    assert all(c == 1 for c in finals.values()) and all(c == 1 for c in asked.values())
    assert not set(finals) & set(asked)
    if case is not None:
        answered = sum("ask" in todo for r in case.rounds for todo in r.values())
        assert sum(asked.values()) == answered


@pytest.mark.parametrize("name", list(ALL))
async def test_every_combination_replays_ok_with_one_record_per_execution(
    name: str, tmp_path: Path, policy_file: str
) -> None:
    case = ALL[name]
    graph = combo_graph()
    settings = Settings(profile="test", home=str(tmp_path / "state"), policies=[policy_file])
    async with Runtime(settings, [graph]) as rt:
        lifetime_id = await drive(rt, graph, case)
        await check_log(rt, lifetime_id, case)


@pytest.mark.parametrize("name", list(ALL))
async def test_a_fork_of_every_combination_replays_ok(
    name: str, tmp_path: Path, policy_file: str
) -> None:
    case = ALL[name]
    graph = combo_graph()
    settings = Settings(profile="test", home=str(tmp_path / "state"), policies=[policy_file])
    async with Runtime(settings, [graph]) as rt:
        original = await drive(rt, graph, case)
        # fork from the middle of the record: a Task execution that ended its input
        tasks = [
            h
            for h in map(_header, await _envelopes(rt, original))
            if h.kind == pb.NODE_KIND_TASK and h.status in FINAL
        ]
        chosen = tasks[len(tasks) // 2]
        changes = Changes()
        fork_id = await fork_lifetime(rt, original, chosen.exec_id)
        rt.follow(fork_id, changes.on_event)
        await steer(rt, fork_id, case, changes, "f")  # it may ask, pause, retry again
        await check_log(rt, fork_id, None)


async def _envelopes(rt: Runtime, lifetime_id: str) -> list[pb.ExecutionEnvelope]:
    return [
        pb.ExecutionEnvelope.FromString(r.envelope) for r in await rt.store.executions(lifetime_id)
    ]


@pytest.mark.parametrize("name", list(ALL))
async def test_every_combination_on_a_dag_fan_out_replays_ok(
    name: str, tmp_path: Path, policy_file: str
) -> None:
    # The same mixes on sends with dependencies: a dependent starts once what it
    # waits for has finished, answered questions included.
    first = ALL[name].rounds[0]
    case = dataclasses.replace(ALL[name], rounds=[{**first, "b3": first.get("b0", [])}])
    graph = dag_graph()
    settings = Settings(profile="test", home=str(tmp_path / "state"), policies=[policy_file])
    async with Runtime(settings, [graph]) as rt:
        lifetime_id = await drive(rt, graph, case)
        await check_log(rt, lifetime_id, case)
