"""The hot path's shortcuts give the answers of the long way round.

Each shortcut (remembered dispatch tokens, integer timestamps, a shared poll
timer, capability checks per class, the quick legal-choice check) is checked
against what it replaces, including the cases it must not take.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tickrail.adapters import Message, ReportsLag, UnitOfWork, offers
from tickrail.adapters.bus.memory import MemoryBus
from tickrail.sdk._timestamps import seconds_of, stamp, timestamp
from tickrail.sdk.choice import choice_problem
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services import dispatch
from tickrail.services.dispatch import DispatchSigner


def _reference_token(key: bytes, *fields: str) -> str:
    data = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
    return hmac.new(key, b"tickrail-dispatch-v1\0" + data, hashlib.sha256).hexdigest()


# The fields a dispatch token signs, shared by an input and its execution's header.
SIGNED: dict[str, object] = dict(
    input_id="l1.1",
    lifetime_id="l1",
    tenant_id="acme",
    graph_id="g",
    graph_version="1.0.0",
    name="act",
    kind=pb.NODE_KIND_TASK,
)


def _input(**fields: object) -> pb.NodeInput:
    return pb.NodeInput(**{**SIGNED, **fields})  # type: ignore[arg-type]


def test_remembered_tokens_are_the_hmac_of_every_signed_field() -> None:
    key = b"k" * 32
    signer = DispatchSigner(key)
    first = _input()
    expected = _reference_token(key, "l1.1", "l1", "acme", "g", "1.0.0", "act", "1")
    assert signer.token(first) == expected
    assert signer.token(first) == expected  # remembered: the same answer
    # Any signed field changed gives another token, remembered or not.
    for change in (
        {"input_id": "l1.2"},
        {"tenant_id": "other"},
        {"graph_version": "1.0.1"},
        {"name": "decide"},
        {"kind": pb.NODE_KIND_PLAN},
    ):
        assert signer.token(_input(**change)) != expected
    header = pb.ExecutionHeader(**SIGNED, attempt=1, exec_id="l1.1.1")  # type: ignore[arg-type]
    assert signer.check(header, expected, "task") == ""
    assert "does not match" in signer.check(header, "0" * 64, "task")
    # Another secret never reuses what this signer remembered.
    assert DispatchSigner(b"x" * 32).token(first) != expected


def test_remembered_tokens_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "_RECENT_TOKENS", 8)
    signer = DispatchSigner(b"k" * 32)
    tokens = [signer.token(_input(input_id=f"l1.{i}")) for i in range(50)]
    assert len(signer._recent) <= 8
    assert [signer.token(_input(input_id=f"l1.{i}")) for i in range(50)] == tokens


@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_000_000_000, time.time_ns(), -1, -(10**9) - 7])
def test_integer_timestamps_match_protobufs_own_conversions(ns: int) -> None:
    ours, theirs = timestamp(ns), Timestamp()
    theirs.FromNanoseconds(ns)
    assert (ours.seconds, ours.nanos) == (theirs.seconds, theirs.nanos)
    inside = pb.ExecutionHeader()
    stamp(inside.started_at, ns)
    assert inside.started_at == theirs
    assert seconds_of(theirs) == theirs.ToNanoseconds() / 1e9


def test_a_poll_times_out_whatever_timer_an_earlier_poll_armed() -> None:
    async def long_then_short() -> None:
        async with MemoryBus() as bus:
            consumer = await bus.subscribe(["t"], "g")
            waiting = asyncio.create_task(consumer.poll(10, timeout=5.0))
            await asyncio.sleep(0.01)
            consumer.wakeup()  # type: ignore[attr-defined]
            assert await waiting == []
            # The 5 s timer is still armed; a sooner deadline must not wait for it.
            started = time.monotonic()
            assert await consumer.poll(10, timeout=0.05) == []
            assert time.monotonic() - started < 4.0
            await bus.publish([Message("t", "k", b"v")])
            assert [m.value for m in await consumer.poll(10, timeout=5.0)] == [b"v"]

    asyncio.run(long_then_short())


def test_a_poll_on_a_new_event_loop_does_not_wait_on_the_old_loops_timer() -> None:
    bus = MemoryBus()

    async def first() -> None:
        await bus.__aenter__()
        consumer = await bus.subscribe(["t"], "g")
        assert await consumer.poll(10, timeout=0.01) == []
        # This loop ends with a shared timer armed on it, due in 0.3 s: it never fires.
        task = asyncio.create_task(consumer.poll(10, timeout=0.3))
        await asyncio.sleep(0.01)
        task.cancel()

    async def second() -> None:
        consumer = await bus.subscribe(["t"], "g")
        started = time.monotonic()
        async with asyncio.timeout(5):  # a later deadline than the dead timer's
            assert await consumer.poll(10, timeout=0.5) == []
        assert time.monotonic() - started < 4.0
        await bus.__aexit__(None, None, None)

    asyncio.run(first())
    asyncio.run(second())


def test_capabilities_are_answered_as_isinstance_would() -> None:
    class Lagging(ReportsLag):
        def lag(self) -> int:
            return 3

    class Plain:
        pass

    for _ in range(2):  # the second answer is the remembered one
        assert offers(Lagging(), ReportsLag)  # type: ignore[type-abstract]
        assert not offers(Plain(), ReportsLag)  # type: ignore[type-abstract]
        assert not offers(Plain(), UnitOfWork)  # type: ignore[type-abstract]


def _choose(*sends: pb.TaskSend) -> pb.PlanResult:
    return pb.PlanResult(sends=list(sends))


def _problem(result: pb.PlanResult, max_fanout: int = 4) -> str:
    edges = {"act": pb.EDGE_KIND_NORMAL}
    return choice_problem("p", result, edges, has_final=False, max_fanout=max_fanout)


def test_the_quick_choice_check_refuses_what_the_full_one_refuses() -> None:
    assert _problem(_choose(pb.TaskSend(task="act"))) == ""
    unknown = _problem(_choose(pb.TaskSend(task="nope")))
    assert "is not a target of its edges" in unknown and "act (NORMAL)" in unknown
    assert "waits for 'x'" in _problem(_choose(pb.TaskSend(task="act", after=["x"])))
    own = _problem(_choose(pb.TaskSend(task="act", id="a", after=["a"])))
    assert "waits for itself" in own
    assert "max_fanout" in _problem(_choose(pb.TaskSend(task="act")), max_fanout=0)


def test_sqlite_units_of_work_take_turns_and_map_sqlite_errors(tmp_path: Path) -> None:
    from tickrail.adapters import NewEvent, open_store
    from tickrail.adapters.store.base import unit_of_work
    from tickrail.sdk.errors import AdapterError

    def event(event_id: str, lifetime: str) -> NewEvent:
        return NewEvent(event_id, lifetime, "t", "g", "started", 1, 1.0, b"x")

    async def scenario() -> None:
        async with open_store(f"sqlite:///{tmp_path}/state.db") as store:
            await store.setup()
            order: list[str] = []

            async def unit(name: str) -> None:
                async with unit_of_work(store):
                    order.append(f"{name} in")
                    await store.append_events([event(f"{name}/started", name)])
                    await asyncio.sleep(0.01)  # the other unit must wait for this one
                    order.append(f"{name} out")

            await asyncio.gather(unit("A"), unit("B"))
            assert order == ["A in", "A out", "B in", "B out"]
            with pytest.raises(AdapterError, match="SQLite transaction failed"):
                async with unit_of_work(store):
                    await store.append_events([event("C/started", "C")])
                    store.db.execute("SELECT * FROM no_such_table")  # type: ignore[attr-defined]
            assert await store.events("C") == []  # rolled back
            await unit("D")  # and the lock was released
            assert [r.event_id for r in await store.events("D")] == ["D/started"]

    asyncio.run(scenario())


@pytest.mark.parametrize("length", [16, 63, 64, 65, 200])
def test_the_signers_hmac_is_rfc_2104_hmac_sha256_for_any_secret_length(length: int) -> None:
    key = bytes(range(256))[:length] if length <= 256 else b"s" * length
    signer = DispatchSigner(key)
    for parts in [("a",), ("input", "lifetime", "tenant", "g", "1.0.0", "node", "1"), ("é" * 50,)]:
        data = b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)
        expected = hmac.new(key, b"purpose\0" + data, hashlib.sha256).hexdigest()
        assert signer._mac(b"purpose", *parts) == expected


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1.5,"b":[1,2,"\xc3\xa9"]}',
        '{"x":null}',
        b"\xef\xbb\xbf[1]",
        "[1e5]",
        b"\xff\xfe[\x001\x00]\x00",
    ],
)
def test_the_shared_json_decoder_reads_what_json_loads_reads(data: str | bytes) -> None:
    from tickrail.sdk._payload import loads_json

    assert loads_json(data) == json.loads(data)


@pytest.mark.parametrize("data", [b"NaN", b"[1e999]", "\ufeff[1]", b"[-Infinity]", b"{"])
def test_the_shared_json_decoder_refuses_what_is_not_standard_json(data: str | bytes) -> None:
    from tickrail.sdk._payload import loads_json

    with pytest.raises(ValueError):
        loads_json(data)


def test_the_shared_json_encoder_writes_what_json_dumps_wrote() -> None:
    from tickrail.sdk._payload import encode

    value = {"a": [1, "é", None, 2.5], "b": {"c": True}}
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert encode(value).inline == expected.encode()
    with pytest.raises(ValueError, match="NaN or Infinity"):
        encode([float("inf")])
    with pytest.raises(TypeError, match="cannot encode a object"):
        encode(object())
