"""In one process the data plane hands the control plane the envelope object it
recorded (CheckedRef) instead of bytes to parse again; the integrity checks stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tickrail.adapters import Consumer, ExecutionRecord
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.data_plane.service import DataPlane
from tickrail.services.runtime import Runtime
from tickrail.services.topics import CheckedRef

from .graphs import loop_graph

GRAPH = loop_graph(2)


def _record(envelope: bytes, created: bool) -> ExecutionRecord:
    return ExecutionRecord(7, "e", "life", "t", "n", 1, 1, 0.0, envelope, created)


def _plane(rt: Runtime) -> DataPlane:
    role = rt._running["data_plane"][0]
    assert isinstance(role, DataPlane)
    return role


async def _templates(rt: Runtime, tap: Consumer) -> list[pb.ExecutionEnvelope]:
    lifetime = await rt.start_lifetime(GRAPH, None)
    assert (await rt.wait(lifetime, timeout=20)).WhichOneof("kind") == "completed"
    return [pb.ExecutionEnvelope.FromString(m.value) for m in await tap.poll(100, timeout=0.5)]


async def test_only_a_newly_recorded_envelope_travels_as_its_object(tmp_path: Path) -> None:
    config = Settings(profile="test", home=str(tmp_path), tenant="t")
    async with Runtime(config, [GRAPH]) as rt:
        envelope = pb.ExecutionEnvelope()
        envelope.task.header.exec_id = "e"
        value = envelope.SerializeToString()
        stored = b"\x0a\x00"  # a duplicate is answered with what the store holds
        new, again = _plane(rt)._refs(
            [value, value],
            ["tok", "tok"],
            [_record(value, True), _record(stored, False)],
            [{}, {}],
            [envelope, envelope],
        )
        assert isinstance(new, CheckedRef) and new.envelope is envelope and new.token == "tok"
        parsed = pb.ExecutionRef.FromString(new.value)  # the bytes say the same
        assert parsed.envelope == envelope and parsed.dispatch_token == "tok"
        assert not isinstance(again, CheckedRef)
        assert pb.ExecutionRef.FromString(again.value).envelope.SerializeToString() == stored
        # Without a control plane in this process, nothing carries an object.
        (plain,) = _plane(rt)._refs([value], ["tok"], [_record(value, True)], [{}])
        assert not isinstance(plain, CheckedRef)


async def test_the_control_plane_still_checks_the_token_of_a_checked_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Settings(profile="test", home=str(tmp_path), tenant="t")
    async with Runtime(config, [GRAPH]) as rt:
        plane = rt.control_plane
        assert plane is not None
        checked: list[tuple[str, bool]] = []
        original = plane.signer.check

        def spy(header: Any, token: str, which: str) -> str:
            problem = original(header, token, which)
            checked.append((token, not problem))
            return problem

        monkeypatch.setattr(plane.signer, "check", spy)
        tap = await rt.bus.subscribe(rt.topics.every("executions"), "tap")
        templates = await _templates(rt, tap)
        # Every execution of the lifetime was admitted by a token check in the
        # control plane (the data plane checks its own; its signer is shared).
        assert len(checked) == 2 * len(templates)
        assert all(token and ok for token, ok in checked)

        forged = pb.ExecutionEnvelope()
        forged.CopyFrom(templates[0])
        header = forged.WhichOneof("execution") or ""
        getattr(forged, header).header.exec_id = "forged-exec"
        lifetime = getattr(forged, header).header.lifetime_id
        ref = CheckedRef(
            rt.topics.persisted("t"), lifetime, b"x", envelope=forged, token="not-a-token"
        )
        outgoing = await plane.decide([ref])
        assert not outgoing.inputs
        assert [m for m, _ in outgoing.rejected] == [ref]
        assert checked[-1] == ("not-a-token", False)
        await tap.close()


async def test_listeners_get_the_events_as_stored(tmp_path: Path) -> None:
    """Events reach this process's listeners as the control plane's objects: exactly
    what the store holds."""
    config = Settings(profile="test", home=str(tmp_path), tenant="t")
    async with Runtime(config, [GRAPH]) as rt:
        heard: list[pb.LifetimeEvent] = []

        def listener(event: pb.LifetimeEvent) -> None:
            heard.append(event)

        rt.listen(None, listener)
        lifetime = await rt.start_lifetime(GRAPH, None)
        assert (await rt.wait(lifetime, timeout=20)).WhichOneof("kind") == "completed"
        stored = [pb.LifetimeEvent.FromString(r.body) for r in await rt.store.events(lifetime)]
        assert heard == stored and len(stored) > 3
