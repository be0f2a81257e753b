"""The cloud profile end to end: every role its own OS process, on Kafka, Postgres,
S3 and Redis, producing the same records as the embedded profile."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters import open_blob_store, open_store
from sdk import load_graph
from sdk._payload import read_bytes
from sdk.pb import envelope_pb2 as pb
from services.config import Settings
from services.runtime import Runtime
from tests.services import random_name

from .big_result import payload

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GRAPHS = [
    str(EXAMPLES / "coding_agent.py"),
    str(EXAMPLES / "parallel_tools.py"),
    str(Path(__file__).with_name("big_result.py")),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(config: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *argv, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Deployment:
    """Starts the role processes; stops them with SIGTERM and checks they exit cleanly."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config, self.logs = config, logs
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.ready: set[str] = set()

    def start(self, name: str, *argv: str) -> None:
        port = free_port()
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.cli.main",
                *argv,
                "--config",
                str(self.config),
                "--port",
                str(port),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs[name] = (proc, port)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        pending = {n: p for n, p in self.procs.items() if n not in self.ready}
        while pending:
            for name, (proc, port) in list(pending.items()):
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                        del pending[name]
                        self.ready.add(name)
                except (urllib.error.URLError, ConnectionError):
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready after {timeout}s: {sorted(pending)}")
            time.sleep(0.2)

    def metrics(self, name: str) -> str:
        port = self.procs[name][1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> dict[str, int | None]:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, (proc, _) in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
        return codes


@pytest.fixture(scope="module")
def cloud_config(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_url: str,
    postgres_url: str,
    s3_url: str,
    redis_url: str,
) -> Path:
    tmp_path = tmp_path_factory.mktemp("cloud")
    schema, prefix = random_name("e2e_"), random_name("e2e")
    sep = "&" if "?" in postgres_url else "?"
    config = {
        "profile": "cloud",
        "bus_url": kafka_url,
        "store_url": f"{postgres_url}{sep}schema={schema}",
        "blob_url": f"s3://{prefix}?endpoint_url={s3_url}&create_bucket=1",
        "kv_url": f"{redis_url}?prefix={prefix}:",
        "topic_prefix": f"{prefix}.",
        "graphs": GRAPHS,
        "shutdown_grace_s": 10,
    }
    path = tmp_path / "tickrail.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def deployment(cloud_config: Path) -> Iterator[Deployment]:
    """One deployment (four processes) shared by this module's tests."""
    migrated = cli(cloud_config, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    d = Deployment(cloud_config, cloud_config.parent)
    try:
        # One at a time: Tansu is slow to settle a group that several members join
        # at once (a real Kafka is not); the second executor still rebalances the first.
        for name, role in [
            ("data-plane", "data-plane"),
            ("control-plane", "control-plane"),
            ("executor-1", "executor"),
            ("executor-2", "executor"),
        ]:
            d.start(name, role)
            d.wait_ready()
        yield d
    finally:
        codes = d.stop()
    assert codes == dict.fromkeys(codes, 0), {n: d.log(n) for n, c in codes.items() if c != 0}


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


@pytest.mark.parametrize("example", ["coding_agent.py", "parallel_tools.py"])
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
