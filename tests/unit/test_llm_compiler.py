"""examples/llm_compiler.py: a DAG of 20 tool calls runs eagerly, then joins once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tickrail.sdk._payload import read_value
from tickrail.sdk.loading import _import_file
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.control_plane.replay import replay_lifetime
from tickrail.services.runtime import Runtime

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm_compiler.py"


def load_example() -> Any:
    return _import_file(EXAMPLE)  # as `tickrail run` imports it


def test_the_critical_path_is_shorter_than_running_level_by_level() -> None:
    example = load_example()
    assert len(example.DAG) == 20
    assert example.critical_path(example.DAG) == pytest.approx(3.0)
    assert example.level_by_level(example.DAG) == pytest.approx(3.5)


async def test_each_call_starts_when_its_own_dependencies_have_finished(tmp_path: Path) -> None:
    from tickrail.services.config import Settings

    example = load_example()
    async with Runtime(Settings(profile="test", home=str(tmp_path)), [example.graph]) as rt:
        lifetime_id = await rt.start_lifetime(example.graph, None)
        done = await rt.wait(lifetime_id, timeout=60)
        records = await rt.store.executions(lifetime_id)
        assert (await replay_lifetime(rt.store, lifetime_id)).ok
    assert done.WhichOneof("kind") == "completed"
    output = await read_value(done.completed.output, None)
    assert output["calls"] == [c.id for c in example.DAG]  # the join sees the DAG's order

    span: dict[str, tuple[int, int]] = {}
    for record in records:
        envelope = pb.ExecutionEnvelope.FromString(record.envelope)
        if envelope.WhichOneof("execution") == "task":
            call = (await read_value(envelope.task.result.output, None))["call"]
            h = envelope.task.header
            span[call] = (h.started_at.ToNanoseconds(), h.finished_at.ToNanoseconds())
    assert len(span) == 20
    for call in example.DAG:  # never before its inputs exist
        for dep in call.after:
            assert span[call.id][0] >= span[dep][1], (call.id, dep)
    # eagerly: a call whose dependencies finished early does not wait for its level
    # (each pair has at least 0.4 s of slack by the DAG's latencies)
    assert span["t5"][0] < span["t3"][1]  # after t1 (0.8 s), before t3 (1.2 s) ends
    assert span["t8"][0] < span["t1"][1]  # after t4 (0.3 s), before t1 (0.8 s) ends
    assert span["t19"][0] < span["t3"][1]  # after t18 (0.4 s), before t3 ends
