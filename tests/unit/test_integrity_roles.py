"""No single message stops a role.

A property-based test feeds every role random bytes, empty messages and
mutations of real envelopes, references, inputs and commands, interleaved
with real lifetimes, and checks that every role keeps running, the real
lifetimes complete, and every bad message is dead-lettered or refused.
Faults in our own code on one message fail only that lifetime.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickrail.adapters import Consumer, Message
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.control_plane.replay import compare
from tickrail.services.runtime import Runtime
from tickrail.services.topics import encode_ref

from .graphs import loop_graph

GRAPH = loop_graph(2)
SIGNED = ("tenant_id", "input_id", "name", "graph_id", "graph_version", "lifetime_id", "kind")
TOPICS = ("executions", "persisted", "task-inputs", "plan-inputs", "commands")

# One bad message: where it goes, and how it is made (raw bytes or a mutation).
bad_message = st.one_of(
    st.tuples(st.sampled_from(TOPICS), st.just("raw"), st.binary(max_size=120), st.just("")),
    st.tuples(st.sampled_from(TOPICS), st.just("empty"), st.just(b""), st.just("")),
    st.tuples(
        st.sampled_from(TOPICS[:4]),
        st.sampled_from([*SIGNED, "token"]),
        st.binary(min_size=1, max_size=12),
        st.sampled_from(["task", "plan"]),
    ),
    st.tuples(
        st.just("commands"),
        st.sampled_from(["pause", "resume", "abort", "start-no-graph", "no-kind"]),
        st.binary(min_size=1, max_size=12),
        st.just(""),
    ),
)


def _header(envelope: pb.ExecutionEnvelope) -> pb.ExecutionHeader:
    return getattr(envelope, envelope.WhichOneof("execution") or "task").header


def mutated_envelope(
    template: pb.ExecutionEnvelope, field: str, noise: bytes
) -> pb.ExecutionEnvelope:
    envelope = pb.ExecutionEnvelope()
    envelope.CopyFrom(template)
    header = _header(envelope)
    text = "x" + noise.hex()
    if field == "kind":
        header.kind = pb.NODE_KIND_PLAN if header.kind == pb.NODE_KIND_TASK else pb.NODE_KIND_TASK
    elif field == "token":
        header.dispatch_token = noise.hex().ljust(64, "0")[:64]
    elif field == "input_id":
        header.input_id = header.input_id + text
        header.exec_id = f"{header.input_id}.{header.attempt}"
    else:
        setattr(header, field, text)
    return envelope


def as_input(envelope: pb.ExecutionEnvelope) -> pb.NodeInput:
    h = _header(envelope)
    return pb.NodeInput(
        input_id=h.input_id,
        lifetime_id=h.lifetime_id,
        tenant_id=h.tenant_id,
        graph_id=h.graph_id,
        graph_version=h.graph_version,
        name=h.name,
        kind=h.kind,
        iteration=h.iteration,
        dispatch_token=h.dispatch_token,
    )


def bad_command(kind: str, noise: bytes) -> pb.LifetimeCommand:
    lifetime_id = "nobody-" + noise.hex()
    command = pb.LifetimeCommand(command_id="c-" + noise.hex(), lifetime_id=lifetime_id)
    if kind == "pause":
        command.pause.reason = "x"
    elif kind == "resume":
        command.resume.reason = "x"
    elif kind == "abort":
        command.abort.reason = "x"
    elif kind == "start-no-graph":
        command.start.lifetime_id = lifetime_id
    return command


class Expect:
    """What each bad message must become: its bytes on a dead-letter topic, or, for
    a node input the executor ran, a refused envelope answering that input."""

    def __init__(self) -> None:
        self.dead_letters: list[tuple[str, bytes]] = []
        self.refused_inputs: list[pb.NodeInput] = []


def build(
    rt: Runtime, spec: tuple[str, str, bytes, str], templates: dict[str, pb.ExecutionEnvelope]
) -> tuple[Message, Expect]:
    topic_kind, how, data, which = spec
    topics = rt.topics
    name = {
        "executions": topics.executions("t"),
        "persisted": topics.persisted("t"),
        "task-inputs": topics.task_inputs("t"),
        "plan-inputs": topics.plan_inputs("t"),
        "commands": topics.commands(),
    }[topic_kind]
    expect = Expect()
    if how in ("raw", "empty"):
        value = data
    elif topic_kind == "commands":
        value = bad_command(how, data).SerializeToString()
    else:
        envelope = mutated_envelope(templates[which], how, data)
        if topic_kind == "executions":
            value = envelope.SerializeToString()
        elif topic_kind == "persisted":
            # The reference carries the token (the stored envelope does not).
            token = _header(envelope if how == "token" else templates[which]).dispatch_token
            value = encode_ref(1, False, envelope.SerializeToString(), token)
        else:
            node_input = as_input(envelope)
            value = node_input.SerializeToString()
            if node_input.kind in (pb.NODE_KIND_TASK, pb.NODE_KIND_PLAN):
                expect.refused_inputs.append(node_input)
                return Message(name, node_input.lifetime_id, value), expect
    expect.dead_letters.append((topics.dead_letter(name), value))
    return Message(name, "k", value), expect


async def scenario(tmp_path: Path, specs: Sequence[tuple[str, str, bytes, str]]) -> None:
    config = Settings(profile="test", home=str(tmp_path / "state"), tenant="t")
    async with Runtime(config, [GRAPH]) as rt:
        every = [
            t
            for kind in ("executions", "persisted", "task-inputs", "plan-inputs")
            for t in rt.topics.every(kind)
        ]
        dlq: Consumer = await rt.bus.subscribe(
            [rt.topics.dead_letter(t) for t in [*every, rt.topics.commands()]], "dlq"
        )
        tap = await rt.bus.subscribe(rt.topics.every("executions"), "tap")
        first = await rt.start_lifetime(GRAPH, None)
        assert (await rt.wait(first, timeout=20)).WhichOneof("kind") == "completed"
        templates: dict[str, pb.ExecutionEnvelope] = {}
        for message in await tap.poll(100, timeout=0.5):
            envelope = pb.ExecutionEnvelope.FromString(message.value)
            templates.setdefault(envelope.WhichOneof("execution") or "", envelope)
        assert set(templates) == {"task", "plan"}

        built = [build(rt, spec, templates) for spec in specs]
        real: list[str] = []
        for index, (message, _) in enumerate(built):
            if index % 2 == 0:
                real.append(await rt.start_lifetime(GRAPH, None))
            await rt.bus.publish([message])
        real.append(await rt.start_lifetime(GRAPH, None))

        for lifetime_id in real:
            final = await rt.wait(lifetime_id, timeout=30)
            assert final.WhichOneof("kind") == "completed", final
        wanted = [d for _, e in built for d in e.dead_letters]
        inputs = [i for _, e in built for i in e.refused_inputs]
        seen: list[Message] = []
        deadline = time.monotonic() + 30
        while not _all_there(wanted, inputs, seen):
            assert time.monotonic() < deadline, (
                "a bad message was neither dead-lettered nor refused"
            )
            seen += await dlq.poll(100, timeout=0.2)
        assert rt.alive(), "a role stopped"
        for lifetime_id in real:  # the log still replays: bad messages changed nothing
            events = [
                pb.LifetimeEvent.FromString(r.body) for r in await rt.store.events(lifetime_id)
            ]
            executions = {
                r.exec_id: pb.ExecutionEnvelope.FromString(r.envelope)
                for r in await rt.store.executions(lifetime_id)
            }
            assert compare(events, executions).ok
        await dlq.close()
        await tap.close()


def _all_there(
    wanted: list[tuple[str, bytes]], inputs: list[pb.NodeInput], seen: list[Message]
) -> bool:
    got = {(m.topic, m.value) for m in seen}
    if not all(w in got for w in wanted):
        return False
    refused = []
    for m in seen:
        if m.topic.startswith("tickrail.executions") and m.headers.get(
            "tickrail-error", ""
        ).startswith("refused"):
            with_header = pb.ExecutionEnvelope.FromString(m.value)
            refused.append(_header(with_header))
    return all(
        any(h.input_id == i.input_id and h.lifetime_id == i.lifetime_id for h in refused)
        for i in inputs
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(bad_message, min_size=1, max_size=6))
def test_no_message_stops_a_role(tmp_path_factory: pytest.TempPathFactory, specs: Any) -> None:
    asyncio.run(scenario(tmp_path_factory.mktemp("roles"), specs))


class Broken:
    """A guard with a bug for one lifetime: the fault is ours, the message is valid."""

    def __init__(self) -> None:
        self.victim = ""

    async def check(
        self, envelope: pb.ExecutionEnvelope, *, lifetime_started_at: float
    ) -> list[Any]:
        if _header(envelope).lifetime_id == self.victim:
            raise ZeroDivisionError("a bug in our code")
        return []


async def test_a_fault_in_our_code_fails_only_that_lifetime(tmp_path: Path) -> None:
    guard = Broken()
    config = Settings(profile="test", home=str(tmp_path / "state"), tenant="t")
    async with Runtime(config, [GRAPH], guard=guard) as rt:
        guard.victim = "victim"
        victim = await rt.start_lifetime(GRAPH, None, lifetime_id="victim")
        others = [await rt.start_lifetime(GRAPH, None) for _ in range(3)]
        failed = await rt.wait(victim, timeout=20)
        assert failed.WhichOneof("kind") == "failed"
        assert "ZeroDivisionError: a bug in our code" in failed.failed.reason
        for lifetime_id in others:
            assert (await rt.wait(lifetime_id, timeout=20)).WhichOneof("kind") == "completed"
        assert rt.alive()
        # The failure is a recorded fact: the state rebuilt from the log is FAILED too,
        # and replay agrees with what was recorded.
        assert rt.control_plane is not None
        rebuilt = await rt.control_plane.load(victim)
        assert rebuilt is not None and rebuilt.status == pb.LIFETIME_STATUS_FAILED
        events = [pb.LifetimeEvent.FromString(r.body) for r in await rt.store.events(victim)]
        executions = {
            r.exec_id: pb.ExecutionEnvelope.FromString(r.envelope)
            for r in await rt.store.executions(victim)
        }
        assert compare(events, executions).ok


async def test_a_fault_escaping_a_batch_is_isolated_to_its_message() -> None:
    """The consume loop's net: the batch is handled message by message, the one that
    still fails is dead-lettered, the rest take effect and every offset moves on."""
    from tickrail.adapters.registry import open_bus
    from tickrail.services.consume import consume_batches
    from tickrail.services.metrics import Metrics

    handled: list[bytes] = []
    dead: list[tuple[bytes, str]] = []
    values = [b"a", b"b", b"poison", b"c"]
    all_done = asyncio.Event()

    async def handle(batch: list[Message]) -> None:
        if any(m.value == b"poison" for m in batch):
            raise KeyError("a bug in our code")
        handled.extend(m.value for m in batch)
        if len(handled) + len(dead) == len(values):
            all_done.set()

    async def dead_letter(message: Message, reason: str) -> None:
        dead.append((message.value, reason))
        if len(handled) + len(dead) == len(values):
            all_done.set()

    async with open_bus("memory://") as bus:
        await bus.ensure_topics(["in"])
        consumer = await bus.subscribe(["in"], "g")
        await bus.publish([Message("in", "k", v) for v in values])
        stopping = asyncio.Event()
        run = asyncio.create_task(
            consume_batches(
                consumer,
                handle,
                stopping,
                batch_size=10,
                metrics=Metrics("t"),
                dead_letter=dead_letter,
            )
        )
        async with asyncio.timeout(20):
            await all_done.wait()
        stopping.set()
        await run
        assert handled == [b"a", b"b", b"c"]
        assert dead == [(b"poison", "internal error: KeyError: 'a bug in our code'")]
        again = await bus.subscribe(["in"], "g")  # committed: nothing is redelivered
        assert await again.poll(10, timeout=0.2) == []
        await again.close()
