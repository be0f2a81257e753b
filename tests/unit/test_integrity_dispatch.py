"""Only dispatched work is accepted: forged envelopes and references change nothing.

The test plays the executor by hand (the runtime runs only the data plane and
the control plane), so it holds the real NodeInput and can answer it honestly
or forge answers of every class: another tenant, an input never dispatched, a
node that is not in the graph, another graph version, the wrong node kind, no
token, a token of another input, attempts that are not derived, and references
written straight to the persisted topic.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tickrail.adapters import Consumer, Message
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.dispatch import DispatchSigner, load_signer
from tickrail.services.runtime import Runtime
from tickrail.services.topics import encode_ref

from .graphs import Work, single_task_graph

GRAPH = single_task_graph(Work("single"))
FORGED = b'"FORGED-RESULT"'


def answer(
    node_input: pb.NodeInput, output: bytes = b'"honest"', attempt: int = 1
) -> pb.ExecutionEnvelope:
    """What an honest executor publishes for ``node_input``."""
    header = pb.ExecutionHeader(
        name=node_input.name,
        exec_id=f"{node_input.input_id}.{attempt}",
        input_id=node_input.input_id,
        graph_id=node_input.graph_id,
        graph_version=node_input.graph_version,
        lifetime_id=node_input.lifetime_id,
        tenant_id=node_input.tenant_id,
        attempt=attempt,
        iteration=node_input.iteration,
        status=pb.EXECUTION_STATUS_SUCCEEDED,
        kind=node_input.kind,
        dispatch_token=node_input.dispatch_token,
    )
    result = pb.TaskResult(output=pb.Payload(content_type="application/json", inline=output))
    return pb.ExecutionEnvelope(task=pb.TaskExecution(header=header, result=result))


def _tenant(e: pb.ExecutionEnvelope) -> None:
    e.task.header.tenant_id = "other-tenant"


def _undispatched(e: pb.ExecutionEnvelope) -> None:
    h = e.task.header
    h.input_id = f"{h.lifetime_id}.99"
    h.exec_id = f"{h.input_id}.1"


def _unknown_node(e: pb.ExecutionEnvelope) -> None:
    e.task.header.name = "not-in-the-graph"


def _version(e: pb.ExecutionEnvelope) -> None:
    e.task.header.graph_version = "9.9.9"


def _graph(e: pb.ExecutionEnvelope) -> None:
    e.task.header.graph_id = "some-other-graph"


def _kind(e: pb.ExecutionEnvelope) -> None:
    header = pb.ExecutionHeader()
    header.CopyFrom(e.task.header)
    e.plan.header.CopyFrom(header)
    e.plan.result.finish = True
    e.plan.result.output.inline = FORGED


def _no_token(e: pb.ExecutionEnvelope) -> None:
    e.task.header.ClearField("dispatch_token")


def _random_token(e: pb.ExecutionEnvelope) -> None:
    e.task.header.dispatch_token = "0" * 64


def _attempt_not_derived(e: pb.ExecutionEnvelope) -> None:
    e.task.header.exec_id = e.task.header.input_id + ".x"


def _attempt_zero(e: pb.ExecutionEnvelope) -> None:
    e.task.header.attempt = 0
    e.task.header.exec_id = e.task.header.input_id + ".0"


FORGERIES: dict[str, Callable[[pb.ExecutionEnvelope], None]] = {
    "tenant": _tenant,
    "undispatched-input": _undispatched,
    "unknown-node": _unknown_node,
    "graph-version": _version,
    "graph-id": _graph,
    "node-kind": _kind,
    "no-token": _no_token,
    "random-token": _random_token,
    "exec-id-not-derived": _attempt_not_derived,
    "attempt-zero": _attempt_zero,
}


def _refused_count() -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("tickrail_refused_total", {"reason": "envelope"})
    return value or 0.0


class Harness:
    def __init__(self, rt: Runtime, inputs: Consumer, dead: Consumer) -> None:
        self.rt, self.inputs, self.dead = rt, inputs, dead
        self.dead_seen: list[Message] = []

    async def next_input(self, lifetime_id: str) -> pb.NodeInput:
        async with asyncio.timeout(20):
            while True:
                for message in await self.inputs.poll(10, timeout=0.2):
                    node_input = pb.NodeInput.FromString(message.value)
                    if node_input.lifetime_id == lifetime_id:
                        return node_input

    async def publish(self, envelope: pb.ExecutionEnvelope, lifetime_id: str) -> bytes:
        raw = envelope.SerializeToString()
        await self.rt.bus.publish([Message(self.rt.topics.executions("t"), lifetime_id, raw)])
        return raw

    async def events(self, lifetime_id: str) -> list[pb.LifetimeEvent]:
        return [
            pb.LifetimeEvent.FromString(r.body) for r in await self.rt.store.events(lifetime_id)
        ]

    async def until(self, lifetime_id: str, kind: str, count: int = 1) -> list[pb.LifetimeEvent]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = [e for e in await self.events(lifetime_id) if e.WhichOneof("kind") == kind]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind!r} event on {lifetime_id}")

    async def stored(self, lifetime_id: str, count: int) -> None:
        deadline = time.monotonic() + 20
        while len(await self.rt.store.executions(lifetime_id)) < count:
            assert time.monotonic() < deadline, f"fewer than {count} executions stored"
            await asyncio.sleep(0.02)

    async def dead_letter_of(self, raw: bytes) -> Message:
        async with asyncio.timeout(20):
            while True:
                for m in self.dead_seen:
                    if m.value == raw:
                        return m
                self.dead_seen += await self.dead.poll(50, timeout=0.2)


@pytest.fixture
async def harness(tmp_path: Path) -> Any:
    settings = Settings(profile="test", home=str(tmp_path / "state"), tenant="t")
    async with Runtime(settings, [GRAPH], roles=("data_plane", "control_plane")) as rt:
        inputs = await rt.bus.subscribe(rt.topics.every("task-inputs"), "hand-executor")
        dlq = [
            rt.topics.dead_letter(t)
            for t in [*rt.topics.every("executions"), *rt.topics.every("persisted")]
        ]
        dead = await rt.bus.subscribe(dlq, "dlq-reader")
        yield Harness(rt, inputs, dead)
        await inputs.close()
        await dead.close()


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_a_forged_envelope_is_refused_and_changes_nothing(
    harness: Harness, forgery: str
) -> None:
    rt = harness.rt
    refused_before = _refused_count()
    lifetime_id = await rt.start_lifetime(GRAPH, {"x": 1}, tenant="t")
    node_input = await harness.next_input(lifetime_id)
    forged = answer(node_input, FORGED)
    FORGERIES[forgery](forged)
    raw = await harness.publish(forged, lifetime_id)

    (refused,) = await harness.until(lifetime_id, "refused")
    assert refused.tenant_id == "t"  # the lifetime's tenant sees it, whatever was claimed
    assert refused.refused.reason
    assert FORGED not in refused.SerializeToString()  # never the forged payload
    dead = await harness.dead_letter_of(raw)
    assert dead.headers["tickrail-error"].startswith("refused")
    assert await rt.store.executions(lifetime_id) == []  # not stored as an execution
    kinds = [e.WhichOneof("kind") for e in await harness.events(lifetime_id)]
    assert kinds == ["started", "routed", "refused"]  # no decision came of it

    # The honest answer still completes the lifetime, with the honest result.
    await harness.publish(answer(node_input), lifetime_id)
    (done,) = await harness.until(lifetime_id, "completed")
    assert json.loads(done.completed.output.inline) == "honest"
    assert _refused_count() > refused_before  # counted (the data plane, then the control plane)


async def test_a_token_of_another_lifetime_is_refused(harness: Harness) -> None:
    rt = harness.rt
    victim = await rt.start_lifetime(GRAPH, None, tenant="t")
    victim_input = await harness.next_input(victim)
    mine = await rt.start_lifetime(GRAPH, None, tenant="t")
    my_input = await harness.next_input(mine)
    forged = answer(victim_input, FORGED)
    forged.task.header.dispatch_token = my_input.dispatch_token  # a token I did receive
    await harness.publish(forged, victim)
    await harness.until(victim, "refused")
    assert await rt.store.executions(victim) == []


async def test_a_reference_written_straight_to_the_persisted_topic_is_refused(
    harness: Harness,
) -> None:
    """The control plane checks again: the data plane is not the only way in."""
    rt = harness.rt
    lifetime_id = await rt.start_lifetime(GRAPH, None, tenant="t")
    node_input = await harness.next_input(lifetime_id)
    forged = answer(node_input, FORGED)
    forged.task.header.tenant_id = "other-tenant"
    raw = encode_ref(1, False, forged.SerializeToString(), node_input.dispatch_token)
    await rt.bus.publish([Message(rt.topics.persisted("t"), lifetime_id, raw)])
    await harness.until(lifetime_id, "refused")
    dead = await harness.dead_letter_of(raw)
    assert "tenant" in dead.headers["tickrail-error"]
    # A forged refusal notice (no valid signature) is dead-lettered, and adds nothing.
    notice = pb.ExecutionRef(envelope=answer(node_input), refused="made up", dispatch_token="ab")
    raw_notice = notice.SerializeToString()
    await rt.bus.publish([Message(rt.topics.persisted("t"), lifetime_id, raw_notice)])
    await harness.dead_letter_of(raw_notice)
    assert len(await harness.until(lifetime_id, "refused")) == 1
    await harness.publish(answer(node_input), lifetime_id)
    await harness.until(lifetime_id, "completed")


async def test_a_signed_answer_for_a_node_the_input_was_not_for_is_refused(
    harness: Harness,
) -> None:
    """Even with a valid token (a trusted signer's), the input must be open and the node
    its own: a name outside the graph cannot reach routing (it used to raise KeyError)."""
    rt = harness.rt
    lifetime_id = await rt.start_lifetime(GRAPH, None, tenant="t")
    node_input = await harness.next_input(lifetime_id)
    forged = answer(node_input, FORGED, attempt=2)
    forged.task.header.name = "not-in-the-graph"
    forged.task.header.dispatch_token = rt.signer.token_of(forged.task.header)
    await harness.publish(forged, lifetime_id)
    (refused,) = await harness.until(lifetime_id, "refused")
    assert "another node" in refused.refused.reason
    # It was stored (the token is valid) but never routed; the honest answer still wins.
    await harness.publish(answer(node_input), lifetime_id)
    (done,) = await harness.until(lifetime_id, "completed")
    assert json.loads(done.completed.output.inline) == "honest"


async def test_the_same_exec_id_again_is_idempotent_and_a_closed_input_is_refused(
    harness: Harness,
) -> None:
    rt = harness.rt
    lifetime_id = await rt.start_lifetime(GRAPH, None, tenant="t")
    node_input = await harness.next_input(lifetime_id)
    honest = answer(node_input)
    await harness.publish(honest, lifetime_id)
    await harness.until(lifetime_id, "completed")
    await harness.publish(honest, lifetime_id)  # redelivered: no refusal, no change
    late = answer(node_input, FORGED, attempt=2)  # a valid token, but the input is closed
    await harness.publish(late, lifetime_id)
    # Nothing routes a finished lifetime; wait until both were consumed.
    await harness.stored(lifetime_id, 2)
    events = await harness.events(lifetime_id)
    assert [e.WhichOneof("kind") for e in events].count("completed") == 1
    assert json.loads(events[-1].completed.output.inline) == "honest"


async def test_recorded_inputs_never_carry_their_token(harness: Harness) -> None:
    """Tenants read their log; an open input's token in it could be replayed."""
    rt = harness.rt
    lifetime_id = await rt.start_lifetime(GRAPH, None, tenant="t")
    node_input = await harness.next_input(lifetime_id)
    assert len(node_input.dispatch_token) == 64
    await harness.publish(answer(node_input), lifetime_id)
    await harness.until(lifetime_id, "completed")
    token = node_input.dispatch_token.encode()
    assert all(token not in r.body for r in await rt.store.events(lifetime_id))
    assert all(token not in r.envelope for r in await rt.store.executions(lifetime_id))


def test_the_embedded_secret_is_generated_once_with_private_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICKRAIL_DISPATCH_SECRET", raising=False)
    first = load_signer("TICKRAIL_DISPATCH_SECRET", "embedded", tmp_path)
    assert (tmp_path / "dispatch.secret").stat().st_mode & 0o777 == 0o600
    again = load_signer("TICKRAIL_DISPATCH_SECRET", "embedded", tmp_path)
    node_input = pb.NodeInput(input_id="L.1", lifetime_id="L", tenant_id="t", name="n")
    assert first.token(node_input) == again.token(node_input)
    monkeypatch.setenv("TICKRAIL_DISPATCH_SECRET", "x" * 32)
    from_env = load_signer("TICKRAIL_DISPATCH_SECRET", "embedded", tmp_path)
    assert from_env.token(node_input) == DispatchSigner(b"x" * 32).token(node_input)


def test_the_cloud_profile_requires_a_dispatch_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickrail.sdk.errors import ConfigurationError

    monkeypatch.delenv("MY_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match=r"\$MY_SECRET"):
        load_signer("MY_SECRET", "cloud", ".")
    monkeypatch.setenv("MY_SECRET", "short")
    with pytest.raises(ConfigurationError, match="at least 16"):
        load_signer("MY_SECRET", "cloud", ".")


def test_encode_ref_matches_protobuf() -> None:
    envelope = answer(pb.NodeInput(input_id="L.1", lifetime_id="L", tenant_id="t", name="n"))
    raw = encode_ref(7, True, envelope.SerializeToString(), "ab" * 32)
    ref = pb.ExecutionRef.FromString(raw)
    assert (ref.seq, ref.duplicate, ref.dispatch_token) == (7, True, "ab" * 32)
    assert ref.envelope == envelope


def test_a_refused_event_reads_plainly_in_the_cli() -> None:
    from tickrail.services.cli.render import describe_event

    event = pb.LifetimeEvent(
        refused=pb.EnvelopeRefused(exec_id="L.9.1", name="x", reason="no dispatch token")
    )
    assert describe_event(event) == "refused an envelope claiming 'L.9.1' ('x'): no dispatch token"


async def test_a_fault_before_admission_cannot_fail_the_lifetime_a_message_names(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Otherwise a message crafted to hit a bug would be a way to kill any lifetime."""
    from tickrail.services.control_plane import service

    real = service.unanswered

    def buggy(state: Any, header: pb.ExecutionHeader) -> str:
        if header.name == "trigger":
            raise ZeroDivisionError("a bug in admission")
        return real(state, header)

    monkeypatch.setattr(service, "unanswered", buggy)
    rt = harness.rt
    lifetime_id = await rt.start_lifetime(GRAPH, None, tenant="t")
    node_input = await harness.next_input(lifetime_id)
    forged = answer(node_input, FORGED, attempt=2)
    forged.task.header.name = "trigger"
    forged.task.header.dispatch_token = rt.signer.token_of(forged.task.header)
    await harness.publish(forged, lifetime_id)
    await harness.stored(lifetime_id, 1)
    await harness.publish(answer(node_input), lifetime_id)
    (done,) = await harness.until(lifetime_id, "completed")
    assert json.loads(done.completed.output.inline) == "honest"
    assert "failed" not in [e.WhichOneof("kind") for e in await harness.events(lifetime_id)]
    assert rt.alive()
