"""The cloud planner loop: every role its own process, on the test broker and services.

    python bench/cloud_loop.py [--sizes 1,50,200]

Starts the test services (scripts/test_services.py) unless TICKRAIL_KAFKA_URL
and friends are already set, then one data-plane, one control-plane and one
executor process (tickrail's CLI, as deployed), and runs 1, 50 and 200
concurrent lifetimes of bench/loop_graph.py (a Plan calling a Task 10 times).
Printed per size, from the timestamps stored in the envelopes:

* the planner loop: a Task envelope's finished_at -> the started_at of the
  Plan attempt that its result fed (p50/p90/p99/max);
* steps (executions) per second over the whole run;
* CPU per execution in each role process (/proc/<pid>/stat before and after).

Not a test: the numbers move with the machine's load (printed alongside).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loop_graph import graph  # noqa: E402

from tickrail.adapters import open_store  # noqa: E402
from tickrail.sdk.pb import envelope_pb2 as pb  # noqa: E402
from tickrail.services.config import Settings  # noqa: E402
from tickrail.services.runtime import Runtime  # noqa: E402

ROLES = ("data-plane", "control-plane", "executor")
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def services_env(work: Path) -> tuple[dict[str, str], Path | None]:
    """The TICKRAIL_*_URL variables: the caller's, or freshly started test services."""
    if all(os.environ.get(f"TICKRAIL_{k}_URL") for k in ("KAFKA", "POSTGRES", "S3", "REDIS")):
        return dict(os.environ), None
    env_file = work / "services.env"
    subprocess.run(
        [sys.executable, "scripts/test_services.py", "start", "--env-file", str(env_file)],
        cwd=ROOT,
        check=True,
    )
    env = dict(os.environ)
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env, env_file


def config(work: Path, env: dict[str, str], bus_options: str) -> Path:
    schema, prefix = f"bench_{uuid.uuid4().hex[:8]}", f"bench{uuid.uuid4().hex[:8]}"
    pg = env["TICKRAIL_POSTGRES_URL"]
    path = work / "tickrail.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "profile": "cloud",
                "bus_url": env["TICKRAIL_KAFKA_URL"] + (f"?{bus_options}" if bus_options else ""),
                "store_url": f"{pg}{'&' if '?' in pg else '?'}schema={schema}",
                "blob_url": f"s3://{prefix}?endpoint_url={env['TICKRAIL_S3_URL']}&create_bucket=1",
                "kv_url": f"{env['TICKRAIL_REDIS_URL']}?prefix={prefix}:",
                "topic_prefix": f"{prefix}.",
                "graphs": [str(ROOT / "bench" / "loop_graph.py")],
                "shutdown_grace_s": 10,
            }
        )
    )
    return path


def start_roles(cfg: Path, env: dict[str, str], logs: Path) -> dict[str, subprocess.Popen[bytes]]:
    cli = [sys.executable, "-m", "tickrail.services.cli.main"]
    subprocess.run([*cli, "migrate", "--config", str(cfg)], cwd=ROOT, env=env, check=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for role in ROLES:  # one at a time: Tansu settles a group slowly when several join
        port = free_port()
        with open(logs / f"{role}.log", "wb") as log:
            procs[role] = subprocess.Popen(
                [*cli, role, "--config", str(cfg), "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while True:
            if procs[role].poll() is not None:
                raise SystemExit(f"{role} exited: {(logs / f'{role}.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:  # not listening yet, or not answering yet
                if time.monotonic() > deadline:
                    raise SystemExit(f"{role} not ready after 120 s") from None
                time.sleep(0.2)
    return procs


def stop_roles(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _seconds(ts: object) -> float:
    return ts.seconds + ts.nanos / 1e9  # type: ignore[attr-defined]


async def loop_latencies(
    store_url: str, lifetime_ids: list[str]
) -> tuple[list[float], list[float], int]:
    """Task finished -> next Plan attempt started, for every loop of these lifetimes,
    and the first part of it: Task finished -> the Plan's input created (routed)."""
    loops: list[float] = []
    routed: list[float] = []
    executions = 0
    async with open_store(store_url) as store:
        for lifetime_id in lifetime_ids:
            finished: dict[str, float] = {}
            plans: list[pb.ExecutionHeader] = []
            for record in await store.executions(lifetime_id):
                executions += 1
                envelope = pb.ExecutionEnvelope.FromString(record.envelope)
                kind = envelope.WhichOneof("execution")
                header = getattr(envelope, kind or "task").header
                if kind == "task":
                    finished[header.exec_id] = _seconds(header.finished_at)
                else:
                    plans.append(header)
            for header in plans:
                for parent in header.parent_exec_ids:
                    if parent in finished:
                        loops.append(_seconds(header.started_at) - finished[parent])
                        routed.append(_seconds(header.created_at) - finished[parent])
    return loops, routed, executions


def start_profilers(
    procs: dict[str, subprocess.Popen[bytes]], profile: Path | None, size: int
) -> list[subprocess.Popen[bytes]]:
    """py-spy recording each role (raw, collapsed stacks: one file per role and size).

    Only samples holding the GIL: a role waiting in a socket call (where a
    loaded machine deschedules it) is not using Python time."""
    if profile is None:
        return []
    py_spy = Path(sys.executable).with_name("py-spy")
    profile.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--gil",
                "--nonblocking",
                "-r",
                "250",
                "-f",
                "raw",
                "-p",
                str(p.pid),
                "-o",
                str(profile / f"{role}-{size}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for role, p in procs.items()
    ]


def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    for spy in profilers:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for spy in profilers:
        spy.wait(timeout=30)


async def run_size(
    settings: Settings,
    procs: dict[str, subprocess.Popen[bytes]],
    size: int,
    profile: Path | None = None,
) -> None:
    async with Runtime(settings, [graph], roles=()) as rt:
        profilers = start_profilers(procs, profile, size)
        before = {role: cpu_seconds(p.pid) for role, p in procs.items()}
        t0 = time.perf_counter()
        ids = [await rt.start_lifetime(graph) for _ in range(size)]
        await asyncio.gather(*(rt.wait(i, timeout=600) for i in ids))
        wall = time.perf_counter() - t0
        after = {role: cpu_seconds(p.pid) for role, p in procs.items()}
        stop_profilers(profilers)
    loops, routed, executions = await loop_latencies(settings.resolved().store_url or "", ids)
    q = statistics.quantiles(loops, n=100, method="inclusive") if len(loops) > 1 else loops * 99
    used = {r: [a - b for a, b in zip(after[r], before[r], strict=True)] for r in procs}
    cpu = "  ".join(
        f"{role} {sum(u) / executions * 1e6:5.0f} (sys {u[1] / executions * 1e6:.0f})"
        for role, u in used.items()
    )
    total = sum(sum(u) for u in used.values()) / executions * 1e6
    print(
        f"  {size:>4} lifetimes  loop p50 {q[49] * 1e3:6.1f} p90 {q[89] * 1e3:6.1f}"
        f" p99 {q[98] * 1e3:6.1f} max {max(loops) * 1e3:6.1f} ms"
        f" (routed by p50 {statistics.median(routed) * 1e3:.1f})"
        f"  {executions / wall:6.0f} steps/s  CPU/execution µs: {cpu}  (all {total:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,50,200")
    parser.add_argument(
        "--bus-options", default="", help="Kafka URL query, e.g. fetch_max_wait_ms=20&linger_ms=1"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record each role with py-spy (pip install py-spy) into this folder, per size",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env, started = services_env(work)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            cfg = config(work, env, args.bus_options)
            # The roles verify each other's dispatch tokens with one shared secret
            # (the cloud profile refuses to start without it); never printed.
            env.setdefault("TICKRAIL_DISPATCH_SECRET", secrets.token_hex(32))
            os.environ.update(env)
            settings = Settings(**yaml.safe_load(cfg.read_text()))
            procs = start_roles(cfg, env, work)
            asyncio.run(run_size(settings, procs, 1))  # warm up: groups settled, code loaded
            print(
                f"load average {os.getloadavg()[0]:.1f}; {graph.graph_id}: 10 Tasks per lifetime;"
                f" bus options: {args.bus_options or 'defaults'}"
            )
            for size in (int(s) for s in args.sizes.split(",")):
                asyncio.run(run_size(settings, procs, size, args.profile))
        finally:
            stop_roles(procs)
            if started is not None:
                subprocess.run(
                    [
                        sys.executable,
                        "scripts/test_services.py",
                        "stop",
                        "--env-file",
                        str(started),
                    ],
                    cwd=ROOT,
                    check=False,
                )


if __name__ == "__main__":
    main()
