"""The cloud profile end to end: every role its own OS process, on Kafka, Postgres,
S3 and Redis, producing the same records as the embedded profile."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.seed_agent import APP, EXAMPLE, REJECT, STORAGE, drive
from tests.services import random_name
from tests.unit.test_seed_coding_agent import check_the_diagram_ran_as_drawn
from tickrail.adapters import open_blob_store, open_store
from tickrail.sdk import load_graph
from tickrail.sdk._payload import read_bytes
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

from .big_result import payload
from .cloud import EXAMPLES, GRAPHS, Deployment, cli

pytestmark = pytest.mark.integration


def shape(executions: list[pb.ExecutionEnvelope], events: list[pb.LifetimeEvent]) -> Any:
    """What must match between two runs: per branch, the nodes in order; the decisions."""
    per_branch: dict[tuple[int, ...], list[tuple[str, int, int]]] = defaultdict(list)
    for envelope in executions:
        h = getattr(envelope, envelope.WhichOneof("execution") or "task").header
        per_branch[tuple(f.index for f in h.branch)].append((h.name, h.iteration, h.status))
    decisions = sorted(
        (e.routed.name, e.routed.status, tuple(d.name for d in e.routed.dispatched))
        for e in events
        if e.WhichOneof("kind") == "routed"
    )
    kinds = sorted(e.WhichOneof("kind") or "" for e in events)
    return dict(per_branch), decisions, kinds


async def recorded(settings: Settings, lifetime_id: str) -> Any:
    async with open_store(settings.resolved().store_url) as store:
        executions = [
            pb.ExecutionEnvelope.FromString(r.envelope) for r in await store.executions(lifetime_id)
        ]
        events = [pb.LifetimeEvent.FromString(r.body) for r in await store.events(lifetime_id)]
    return executions, events


async def embedded_shape(tmp_path: Path, graph_path: str) -> Any:
    graph = load_graph(graph_path)
    settings = Settings(profile="embedded", home=str(tmp_path / "embedded"))
    async with Runtime(settings, [graph]) as rt:
        final = await rt.wait(await rt.start_lifetime(graph), timeout=60)
    return shape(*await recorded(settings, final.lifetime_id))


@pytest.mark.parametrize("example", ["coding_agent.py", "parallel_tools.py", "llm_compiler.py"])
async def test_examples_on_separate_processes_match_the_embedded_run(
    example: str, deployment: Deployment, tmp_path: Path
) -> None:
    result = cli(deployment.config, "run", str(EXAMPLES / example), "--json", "--quiet")
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads(result.stdout)
    assert summary["status"] == "COMPLETED"
    settings = Settings(**yaml.safe_load(deployment.config.read_text()))
    executions, events = await recorded(settings, summary["lifetime_id"])
    exec_ids = [getattr(e, e.WhichOneof("execution") or "task").header.exec_id for e in executions]
    assert len(exec_ids) == len(set(exec_ids)) == summary["executions"]  # one record each
    assert shape(executions, events) == await embedded_shape(tmp_path, str(EXAMPLES / example))
    metrics = deployment.metrics("data-plane")
    assert "tickrail_messages_processed_total" in metrics
    assert "tickrail_consumer_lag" in metrics


async def test_a_3mb_result_travels_through_s3(deployment: Deployment) -> None:
    result = cli(deployment.config, "run", GRAPHS[2], "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    settings = Settings(**yaml.safe_load(deployment.config.read_text())).resolved()
    (envelope,), _ = await recorded(settings, summary["lifetime_id"])
    output = envelope.task.result.output
    assert output.WhichOneof("body") == "blob" and output.blob.uri.startswith("s3://")
    async with open_blob_store(settings.blob_url) as blobs:
        assert await read_bytes(output, blobs) == payload()


def test_streamed_output_reaches_the_follower_over_kafka(deployment: Deployment) -> None:
    # The executor process publishes the output on the events topic; this run,
    # in another process, hears it there and prints it before the result.
    result = cli(deployment.config, "run", GRAPHS[-1])
    assert result.returncode == 0, result.stderr
    logs = deployment.log("executor-1") + deployment.log("executor-2")
    assert "> streamed" in result.stderr, result.stderr + logs
    line = next(x for x in result.stderr.splitlines() if "> streamed" in x)
    assert line.split("> ", 1)[1] == "streamed across processes, 21 °C"
    assert '> {"words": 4}' in result.stderr
    assert result.stderr.index("> streamed") < result.stderr.index("COMPLETED")


async def test_garbage_on_the_executions_topic_is_dead_lettered_and_traffic_continues(
    deployment: Deployment,
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    settings = Settings(**yaml.safe_load(deployment.config.read_text())).resolved()
    bootstrap = settings.bus_url.removeprefix("kafka://")
    topic = f"{settings.topic_prefix}executions"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\xff\xfenot a protobuf", key=b"garbage")
    finally:
        await producer.stop()
    result = cli(deployment.config, "run", str(EXAMPLES / "parallel_tools.py"), "--json", "--quiet")
    assert result.returncode == 0 and json.loads(result.stdout)["status"] == "COMPLETED"
    consumer = AIOKafkaConsumer(
        f"{topic}.dlq",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=random_name("dlq"),
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=15000)
    finally:
        await consumer.stop()
    dead = [r for records in batches.values() for r in records]
    assert [r.value for r in dead] == [b"\xff\xfenot a protobuf"]
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert "undecodable ExecutionEnvelope" in headers["tickrail-error"]
    assert headers["tickrail-source-topic"] == topic


async def test_answer_both_prompts_then_fork_follows_the_fork_not_its_copied_history(
    deployment: Deployment,
) -> None:
    # A lifetime whose history holds a pause (two people asked) and two answers.
    run = cli(deployment.config, "run", str(EXAMPLES / "human_review.py"), "--json", "--quiet")
    assert run.returncode == 3, run.stderr + run.stdout
    summary = json.loads(run.stdout)
    lifetime_id = summary["lifetime_id"]
    assert sorted(w["name"] for w in summary["waiting"]) == ["legal_review", "security_review"]
    for waiting in summary["waiting"]:
        answered = cli(
            deployment.config,
            "lifetimes",
            "resume",
            lifetime_id,
            "--exec",
            waiting["exec_id"],
            "--input",
            "approve",
            "--json",
            "--quiet",
        )
        assert answered.returncode in (0, 3), answered.stderr + answered.stdout
    assert json.loads(answered.stdout)["status"] == "COMPLETED"
    shown = json.loads(cli(deployment.config, "lifetimes", "show", lifetime_id, "--json").stdout)
    verdict = [e for e in shown["executions"] if e["header"]["name"] == "verdict"][-1]
    # Fork at the verdict: the copied history has the pause; the fork must be
    # followed to its own end (it used to stop at the copied pause, RUNNING, exit 1).
    forked = cli(
        deployment.config,
        "fork",
        lifetime_id,
        "--from",
        verdict["header"]["exec_id"],
        "--json",
        "--quiet",
    )
    assert forked.returncode == 0, forked.stderr + forked.stdout
    fork = json.loads(forked.stdout)
    assert fork["status"] == "COMPLETED" and fork["lifetime_id"] != lifetime_id
    for checked in (lifetime_id, fork["lifetime_id"]):
        replay = cli(deployment.config, "replay", checked)
        assert replay.returncode == 0 and replay.stdout.startswith("OK"), replay.stdout


def test_the_seed_coding_agent_runs_as_drawn_on_separate_processes(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.config
    started = cli(
        config, "run", str(EXAMPLE), "--input", '{"app": "todo list"}', "--json", "--quiet"
    )
    assert started.returncode == 3, started.stderr + started.stdout
    lifetime_id = json.loads(started.stdout)["lifetime_id"]
    settings = Settings(**yaml.safe_load(config.read_text())).resolved()

    def resume(exec_id: str, reply: str) -> int:
        args = ["lifetimes", "resume", lifetime_id, "--exec", exec_id, "--input", reply]
        done = cli(config, *args, "--json", "--quiet")
        assert done.returncode in (0, 3), done.stderr
        return done.returncode

    answered = drive(settings.store_url, lifetime_id, resume)
    assert [a for _, a in answered] == [APP, STORAGE, REJECT, "accept"]
    executions, events = asyncio.run(recorded(settings, lifetime_id))
    check_the_diagram_ran_as_drawn(events, executions)
    replay = cli(config, "replay", lifetime_id, "--json")
    assert replay.returncode == 0 and json.loads(replay.stdout)["ok"], replay.stdout

    # fork at candidate 1's failed validation with an edited, passing result
    first = next(e for e in executions if e.task.header.name == "validate_1")
    report = json.loads(first.task.result.output.inline)
    edited = tmp_path / "passed.json"
    edited.write_text(json.dumps({**report, "passed": True, "issues": []}))
    forked = cli(
        config,
        "fork",
        lifetime_id,
        "--from",
        first.task.header.exec_id,
        "--result",
        str(edited),
        "--json",
        "--quiet",
    )
    assert forked.returncode == 3, forked.stderr + forked.stdout  # it asks the person
    fork_id = json.loads(forked.stdout)["lifetime_id"]
    edited_exec = first.task.header.exec_id.replace(lifetime_id, fork_id)
    deadline = time.monotonic() + 90
    after: list[pb.PlanExecution] = []
    while not after and time.monotonic() < deadline:
        fork_execs, _ = asyncio.run(recorded(settings, fork_id))
        after = [e.plan for e in fork_execs if edited_exec in e.plan.header.parent_exec_ids]
        time.sleep(0.2)
    assert [list(p.result.next_task_names) for p in after] == [["human_accept_reject"]]
