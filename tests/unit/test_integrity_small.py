"""The small ones: NaN and Infinity, empty messages, commands across tenants."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from tickrail.adapters import Message
from tickrail.sdk import Task, TaskContext
from tickrail.sdk._payload import decode_bytes, encode
from tickrail.sdk.errors import EnvelopeError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime
from tickrail.services.topics import check_envelope

from .graphs import Work, single_task_graph


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"a": [1, math.nan]}])
def test_nan_and_infinity_are_refused_with_a_clear_error(value: Any) -> None:
    with pytest.raises(ValueError, match="NaN or Infinity"):
        encode(value)


@pytest.mark.parametrize("text", [b"NaN", b'{"a": Infinity}', b"[-Infinity]"])
def test_non_standard_json_is_never_read_back(text: bytes) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        decode_bytes("application/json", text)


class ReturnsNaN(Task):
    name = "nan"

    async def run(self, ctx: TaskContext) -> Any:
        return {"score": float("nan")}


async def test_a_task_returning_nan_fails_with_the_reason_and_stores_only_json(
    tmp_path: Path,
) -> None:
    graph = single_task_graph(ReturnsNaN(), "nan_graph")
    settings = Settings(profile="test", home=str(tmp_path / "h"))
    async with Runtime(settings, [graph]) as rt:
        final = await rt.wait(await rt.start_lifetime(graph, None), timeout=20)
        assert final.WhichOneof("kind") == "failed"
        assert "NaN or Infinity" in final.failed.reason
        for record in await rt.store.executions(final.lifetime_id):
            output = pb.ExecutionEnvelope.FromString(record.envelope).task.result.output
            if output.inline:
                json.loads(output.inline, parse_constant=lambda c: pytest.fail(c))


def _envelope(**telemetry: Any) -> pb.ExecutionEnvelope:
    header = pb.ExecutionHeader(
        name="n",
        exec_id="L.1.1",
        input_id="L.1",
        lifetime_id="L",
        tenant_id="t",
        status=pb.EXECUTION_STATUS_SUCCEEDED,
    )
    return pb.ExecutionEnvelope(
        task=pb.TaskExecution(header=header, telemetry=pb.PolicyTelemetry(**telemetry))
    )


@pytest.mark.parametrize(
    "telemetry",
    [
        {"cost_usd": math.nan},
        {"cost_usd": math.inf},
        {"latency_ms": math.nan},
        {"metrics": {"m": math.nan}},
        {"tokens_in": -5},
        {"cost_usd": -1.0},
    ],
)
def test_usage_that_would_defeat_a_budget_is_refused(telemetry: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError, match="refused"):
        check_envelope(_envelope(**telemetry))
    assert check_envelope(_envelope(cost_usd=0.5)).exec_id == "L.1.1"


def test_recording_nan_usage_is_refused() -> None:
    from types import SimpleNamespace

    from tickrail.sdk.context import NodeContext, Usage

    holder = SimpleNamespace(usage=Usage())  # record_usage only touches .usage
    with pytest.raises(ValueError, match="finite"):
        NodeContext.record_usage(holder, cost_usd=math.nan)  # type: ignore[arg-type]


async def test_empty_messages_on_every_topic_are_dead_lettered(tmp_path: Path) -> None:
    graph = single_task_graph(Work("single"))
    settings = Settings(profile="test", home=str(tmp_path / "h"), tenant="t")
    async with Runtime(settings, [graph]) as rt:
        topics = [
            rt.topics.task_inputs("t"),
            rt.topics.plan_inputs("t"),
            rt.topics.executions("t"),
            rt.topics.persisted("t"),
            rt.topics.commands(),
        ]
        dlq = await rt.bus.subscribe([rt.topics.dead_letter(t) for t in topics], "dlq")
        await rt.bus.publish([Message(t, "k", b"") for t in topics])
        done = await rt.wait(await rt.start_lifetime(graph, None), timeout=20)
        assert done.WhichOneof("kind") == "completed"
        seen: dict[str, str] = {}
        deadline = time.monotonic() + 20
        while len(seen) < len(topics):
            assert time.monotonic() < deadline, f"not dead-lettered: {set(topics) - set(seen)}"
            for m in await dlq.poll(10, timeout=0.2):
                seen[m.headers["tickrail-source-topic"]] = m.headers["tickrail-error"]
        assert all("empty" in reason for reason in seen.values()), seen
        assert rt.alive()
        await dlq.close()


async def test_commands_for_another_tenants_lifetime_change_nothing(tmp_path: Path) -> None:
    """The control plane answers another tenant's lifetime id as it answers an unknown one."""
    graph = single_task_graph(Work("single", delay=0.2))
    settings = Settings(profile="test", home=str(tmp_path / "h"))
    async with Runtime(settings, [graph]) as rt:
        dlq = await rt.bus.subscribe([rt.topics.dead_letter(rt.topics.commands())], "dlq")
        victim = await rt.start_lifetime(graph, {"x": 1}, tenant="victim")
        unknown = "no-such-lifetime"
        for lifetime_id in (victim, unknown):
            await rt.bus.publish(
                [
                    Message(
                        rt.topics.commands(),
                        lifetime_id,
                        pb.LifetimeCommand(
                            command_id=f"c-{lifetime_id}",
                            lifetime_id=lifetime_id,
                            tenant_id="mallory",
                            abort=pb.LifetimeAborted(reason="hostile"),
                        ).SerializeToString(),
                    ),
                ]
            )
        start = pb.LifetimeCommand(
            command_id="s",
            lifetime_id=victim,
            tenant_id="mallory",
            start=pb.StartLifetime(lifetime_id=victim, tenant_id="mallory", graph=graph.spec),
        )
        await rt.bus.publish([Message(rt.topics.commands(), victim, start.SerializeToString())])
        reasons: list[str] = []
        async with asyncio.timeout(20):
            while len(reasons) < 3:
                reasons += [m.headers["tickrail-error"] for m in await dlq.poll(10, timeout=0.2)]
        abort_victim, abort_unknown, _ = reasons
        assert abort_victim.replace(victim, "ID") == abort_unknown.replace(unknown, "ID")
        final = await rt.wait(victim, timeout=20)
        assert final.WhichOneof("kind") == "completed" and final.tenant_id == "victim"
        await dlq.close()


@pytest.mark.parametrize("raw", ['{"name": NaN}', '{"name": 1e999}', "[-Infinity]"])
def test_non_json_numbers_on_the_command_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: str
) -> None:
    from tickrail.services.cli.main import main

    graph = str(Path(__file__).resolve().parents[2] / "examples" / "hello.yaml")
    assert main(["run", graph, "--input", raw, "--home", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "Traceback" not in err
