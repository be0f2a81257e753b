"""One deployment shared by the fault tests: the four role processes on a Redis and a
Tansu broker of the test's own, and the machine's Postgres behind a TCP proxy."""

from __future__ import annotations

import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests.integration.cloud import Deployment, cli
from tests.integration.conftest import dispatch_secret
from tests.services import postgres_url, random_name, s3_url
from tickrail.services.topics import Topics

from .driver import POLICY, Driver
from .harness import OwnBroker, OwnRedis, TcpProxy

__all__ = ["dispatch_secret", "fault_env", "postgres_url", "s3_url"]

GRAPH = str(Path(__file__).with_name("fault_graph.py"))
# Two Task executors share the executor-tasks group, as in docs/deploy.md: a
# group with several members rebalances on every fault (Tansu once kept a
# departed leader there for ever).
ROLES: dict[str, tuple[str, ...]] = {
    "data-plane": ("data-plane",),
    "control-plane": ("control-plane",),
    "executor-tasks": ("executor", "--serves", "tasks"),
    "executor-tasks-2": ("executor", "--serves", "tasks"),
    "executor-plans": ("executor", "--serves", "plans"),
}


class FaultDeployment(Deployment):
    """Each start of a role logs to a file of its own (``NAME.N.log``), so a
    relaunch never overwrites what the previous process said before a fault."""

    def __init__(self, config: Path, logs: Path) -> None:
        super().__init__(config, logs)
        self.starts: dict[str, int] = {}

    def start(self, name: str, *argv: str) -> None:
        self.starts[name] = self.starts.get(name, 0) + 1
        super().start(f"{name}.{self.starts[name]}", *argv)
        self.procs[name] = self.procs.pop(f"{name}.{self.starts[name]}")

    def log_files(self, name: str) -> list[Path]:
        return [self.logs / f"{name}.{n}.log" for n in range(1, self.starts.get(name, 0) + 1)]

    def log(self, name: str) -> str:
        """The tail of the current process's log."""
        files = self.log_files(name)
        return files[-1].read_text(errors="replace")[-4000:] if files else ""

    def tails(self, chars: int = 6000) -> str:
        """The tail of every start's log of every role, for a failure report."""
        out = []
        for name in self.starts:
            for path in self.log_files(name):
                text = path.read_text(errors="replace") if path.exists() else ""
                out.append(f"===== {path.name} (last {chars} chars) =====\n{text[-chars:]}")
        return "\n".join(out)

    def terminate(self, names: list[str], timeout: float = 60) -> dict[str, int | None]:
        """SIGTERM these roles together; their exit codes (None: had to be killed)."""
        for name in names:
            self.procs[name][0].send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name in names:
            proc = self.procs[name][0]
            try:
                codes[name] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
            self.ready.discard(name)
        return codes

    def relaunch(self, names: list[str]) -> None:
        for name in names:
            self.procs.pop(name, None)
            self.start(name, *ROLES[name])
        self.wait_ready()

    def probe(self, name: str, path: str) -> tuple[int, str]:
        port = self.procs[name][1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()

    def assert_alive(self) -> None:
        dead = {n: p.returncode for n, (p, _) in self.procs.items() if p.poll() is not None}
        assert not dead, {n: (code, self.log(n)) for n, code in dead.items()}


@dataclass
class FaultEnv:
    deployment: FaultDeployment
    driver: Driver
    proxy: TcpProxy
    redis: OwnRedis
    broker: OwnBroker


@pytest.fixture(scope="module")
def fault_env(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, s3_url: str
) -> Iterator[FaultEnv]:
    work = tmp_path_factory.mktemp("faults")
    redis, broker = OwnRedis(work), OwnBroker(work)
    pg = urlsplit(postgres_url)
    proxy = TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432)
    redis.start()
    broker.start()
    proxy.start()
    schema, prefix = random_name("faults_"), random_name("faults")
    sep = "&" if "?" in postgres_url else "?"
    netloc = pg.netloc.rsplit("@", 1)
    proxied_netloc = (
        f"{netloc[0]}@127.0.0.1:{proxy.port}" if len(netloc) == 2 else f"127.0.0.1:{proxy.port}"
    )
    proxied = urlunsplit(pg._replace(netloc=proxied_netloc))
    policy = work / "policy.yaml"
    policy.write_text(POLICY)
    config = {
        "profile": "cloud",
        "bus_url": broker.url,
        "store_url": f"{proxied}{sep}schema={schema}",
        "blob_url": f"s3://{prefix}?endpoint_url={s3_url}&create_bucket=1",
        "kv_url": f"{redis.url}?prefix={prefix}:",
        "topic_prefix": f"{prefix}.",
        "graphs": [GRAPH],
        "policies": [str(policy)],
        "shutdown_grace_s": 10,
    }
    path = work / "tickrail.yaml"
    path.write_text(yaml.safe_dump(config))
    deployment = FaultDeployment(path, work)
    codes: dict[str, int | None] = {}
    try:
        migrated = cli(path, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        for name, argv in ROLES.items():  # one at a time: Tansu settles groups slowly
            deployment.start(name, *argv)
            deployment.wait_ready()
        driver = Driver(
            broker.url,
            f"{postgres_url}{sep}schema={schema}",
            redis.url,
            f"{prefix}:",
            Topics(f"{prefix}.", False, ()),
        )
        yield FaultEnv(deployment, driver, proxy, redis, broker)
    finally:
        codes = deployment.stop()
        proxy.close()
        broker.stop()
        redis.stop()
    assert codes == dict.fromkeys(codes, 0), {
        n: deployment.log(n) for n, c in codes.items() if c != 0
    }
