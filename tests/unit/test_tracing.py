"""OpenTelemetry traces of embedded lifetimes (the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.spans import check_lifetime_tree, from_sdk, overlapping
from tickrail.sdk import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Task,
    TaskContext,
    final,
    join,
    parallel,
)
from tickrail.sdk.errors import ConfigurationError
from tickrail.services import tracing
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install([exporter], service_name="tickrail-test")
    try:
        yield exporter
    finally:
        tracing.reset()


class Fan(Plan):
    async def plan(self, ctx: PlanContext) -> Next | Finish:
        if ctx.upstream:
            return Finish(sorted(u.name for u in ctx.upstream if u.ok))
        return Next(["t1", "t2", "t3"])


class Meet(Task):
    """Returns only once all three branches are running: their spans must overlap."""

    def __init__(self, name: str, arrived: dict[str, Any]) -> None:
        self.name, self.arrived = name, arrived

    async def run(self, ctx: TaskContext) -> str:
        ctx.record_usage(tokens_in=7, tokens_out=3, cost_usd=0.01, model="m-1")
        # A user span opened inside the Task nests under the execution's span.
        with trace.get_tracer("user").start_as_current_span("user work"):
            names, all_here = self.arrived.setdefault(ctx.lifetime_id, (set(), asyncio.Event()))
            names.add(self.name)
            if len(names) == 3:
                all_here.set()
            async with asyncio.timeout(30):
                await all_here.wait()
        if isinstance(ctx.input, dict) and ctx.input.get("fail") == self.name:
            raise ValueError(f"{self.name} failed on purpose")
        return self.name


def fan_graph() -> AgentGraph:
    arrived: dict[str, Any] = {}
    tasks = [Meet(n, arrived) for n in ("t1", "t2", "t3")]
    for t in tasks:
        t.continue_on_failure = True  # type: ignore[misc]
    return AgentGraph(
        "fan",
        version="1.0.0",
        entry="fan",
        nodes=[Fan(), *tasks],
        edges=[parallel("fan", ["t1", "t2", "t3"]), join(["t1", "t2", "t3"], "fan"), final("fan")],
    )


async def run(
    tmp_path: Path, graph: AgentGraph, value: Any = None, lifetime_id: str | None = None
) -> str:
    settings = Settings(profile="test", home=str(tmp_path / "state"))
    async with Runtime(settings, [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph, value, lifetime_id=lifetime_id)
        final_event = await rt.wait(lifetime_id, timeout=60)
        assert final_event.WhichOneof("kind") == "completed", final_event
    return lifetime_id


async def test_a_fan_out_and_join_lifetime_is_one_tree(
    tmp_path: Path, exported: InMemorySpanExporter
) -> None:
    lifetime_id = await run(tmp_path, fan_graph())
    spans = from_sdk(exported.get_finished_spans())
    tree = check_lifetime_tree(spans, lifetime_id, tracing.trace_id_hex(lifetime_id))
    root = tree.pop("root")
    assert root["name"] == "lifetime fan" and root["status"] == "UNSET"
    assert root["attributes"]["tickrail.status"] == "COMPLETED"
    executions = list(tree.values())
    assert sorted(s["name"] for s in executions) == [
        "plan fan",
        "plan fan",
        "task t1",
        "task t2",
        "task t3",
    ]
    tasks = [s for s in executions if s["name"].startswith("task ")]
    assert overlapping(tasks)  # they ran concurrently, under one parent
    for span in tasks:
        a = span["attributes"]
        assert (a["tickrail.kind"], a["tickrail.attempt"], a["tickrail.status"]) == (
            "task",
            1,
            "SUCCEEDED",
        )
        assert (a["tickrail.tokens_in"], a["tickrail.tokens_out"]) == (7, 3)
        assert a["tickrail.cost_usd"] == pytest.approx(0.01) and a["tickrail.model"] == "m-1"
        assert a["tickrail.exec_id"].startswith(lifetime_id)
    # The user's own span is a child of the execution it was opened in.
    users = [s for s in spans if s["name"] == "user work"]
    by_span = {s["span_id"]: s for s in executions}
    assert sorted(by_span[u["parent_id"]]["name"] for u in users) == [
        "task t1",
        "task t2",
        "task t3",
    ]
    # Every span was exported by this process's provider.
    assert {s["service"] for s in spans} == {"tickrail-test"}


async def test_a_failed_execution_records_its_error(
    tmp_path: Path, exported: InMemorySpanExporter
) -> None:
    lifetime_id = await run(tmp_path, fan_graph(), {"fail": "t2"})
    spans = from_sdk(exported.get_finished_spans())
    check_lifetime_tree(spans, lifetime_id, tracing.trace_id_hex(lifetime_id))
    (failed,) = [s for s in spans if s["name"] == "task t2"]
    assert failed["status"] == "ERROR"
    assert failed["attributes"]["tickrail.status"] == "FAILED"
    (event,) = [e for e in failed["events"] if e[0] == "exception"]
    assert event[1]["exception.type"] == "ValueError"
    assert "failed on purpose" in event[1]["exception.message"]


async def test_two_lifetimes_are_two_traces(tmp_path: Path, exported: InMemorySpanExporter) -> None:
    graph = fan_graph()
    first = await run(tmp_path / "a", graph)
    second = await run(tmp_path / "b", graph)
    spans = from_sdk(exported.get_finished_spans())
    ids = {s["trace_id"] for s in spans if s["name"].split(" ")[0] in ("task", "plan", "lifetime")}
    assert ids == {tracing.trace_id_hex(first), tracing.trace_id_hex(second)}


def test_exporters_come_from_the_standard_variables() -> None:
    try:
        assert tracing.configure(environ={}) is False
        tracing.reset()
        assert tracing.configure(environ={"OTEL_TRACES_EXPORTER": "none"}) is False
        tracing.reset()
        env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
        assert tracing.configure(environ=env) is False
        tracing.reset()
        with pytest.raises(ConfigurationError, match=r"OTEL_TRACES_EXPORTER.*jaeger"):
            tracing.configure(environ={"OTEL_TRACES_EXPORTER": "jaeger"})
        tracing.reset()
        env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
        with pytest.raises(ConfigurationError, match="http/json"):
            tracing.configure(environ=env)
        tracing.reset()
        env = {"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_SERVICE_NAME": "agents"}
        assert tracing.configure("tickrail-executor", environ=env) is True
        assert tracing._provider is not None
        assert tracing._provider.resource.attributes["service.name"] == "agents"
    finally:
        tracing.reset()


def test_without_an_exporter_nothing_of_opentelemetry_is_imported(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from tickrail.services.cli.main import main\n"
        "code = main(['run', 'examples/hello.yaml', '--quiet', '--home', sys.argv[1]])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "print(code, loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip().endswith("0 []"), result.stdout + result.stderr


def test_the_console_exporter_prints_the_run_as_one_trace(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_TRACES_EXPORTER"] = "console"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickrail.services.cli.main",
            "run",
            "examples/parallel_tools.py",
            "--home",
            str(tmp_path),
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    from tests.spans import from_console

    spans = from_console(result.stdout)
    (lifetime_id,) = {s["attributes"]["tickrail.lifetime_id"] for s in spans}
    tree = check_lifetime_tree(spans, lifetime_id, tracing.trace_id_hex(lifetime_id))
    tree.pop("root")
    tools = [s for s in tree.values() if s["name"].startswith("task ")]
    assert sorted(s["name"] for s in tools) == [
        "task answer",
        "task stock_quote",
        "task weather",
        "task web_search",
    ]


async def test_sampling_keeps_or_drops_whole_lifetimes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    exporter = InMemorySpanExporter()
    provider = tracing.install([exporter])
    # Two lifetimes the sampler keeps and two it drops (it decides on the trace id).
    candidates = [f"sampled-{i}" for i in range(64)]
    keep = [c for c in candidates if tracing._sampled(provider, tracing.lifetime_ids(c)[0])]
    drop = [c for c in candidates if c not in keep]
    try:
        graph = fan_graph()
        for lifetime_id in keep[:2] + drop[:2]:
            await run(tmp_path / lifetime_id, graph, lifetime_id=lifetime_id)
    finally:
        tracing.reset()
    spans = from_sdk(exporter.get_finished_spans())
    kept = {s["attributes"].get("tickrail.lifetime_id") for s in spans} - {None}
    expected = set(keep[:2])
    assert kept == expected
    for lifetime_id in kept:  # a kept lifetime is whole
        check_lifetime_tree(spans, lifetime_id, tracing.trace_id_hex(lifetime_id))
