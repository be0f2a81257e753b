"""A cloud-profile deployment for integration tests: role processes on real services."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.services import random_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GRAPHS = [
    str(EXAMPLES / "coding_agent.py"),
    str(EXAMPLES / "parallel_tools.py"),
    str(Path(__file__).with_name("big_result.py")),
    str(EXAMPLES / "human_review.py"),
    str(EXAMPLES / "seed_coding_agent.py"),
    str(EXAMPLES / "llm_compiler.py"),
    str(Path(__file__).with_name("streamer.py")),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(config: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickrail.services.cli.main", *argv, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# What a probe of a role that is starting, stopping or busy can raise: refused or
# reset connections and socket timeouts (OSError, which includes TimeoutError),
# HTTP errors such as a 503 (URLError), or a half-written answer (HTTPException).
SLOW_ANSWER = (urllib.error.URLError, OSError, http.client.HTTPException)


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
                "tickrail.services.cli.main",
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
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
                        del pending[name]
                        self.ready.add(name)
                except SLOW_ANSWER:
                    # not listening yet, not ready (503), or too busy to answer in
                    # time on a loaded machine (TimeoutError): ask again until the deadline
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready after {timeout}s: {sorted(pending)}")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no commit, no LeaveGroup, like a lost machine."""
        proc, _ = self.procs[name]
        proc.kill()
        proc.wait(timeout=10)
        self.ready.discard(name)

    def restart(self, name: str, *argv: str) -> None:
        """Start ``name`` again (on a fresh port) and wait until it is ready."""
        self.procs.pop(name, None)
        self.start(name, *argv)
        self.wait_ready()

    def metrics(self, name: str, timeout: float = 60) -> str:
        """The role's /metrics text; a busy role that answers slowly is asked again."""
        port = self.procs[name][1]
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return str(r.read().decode())
            except SLOW_ANSWER:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every process and return the exit codes (None: had to be killed)."""
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
