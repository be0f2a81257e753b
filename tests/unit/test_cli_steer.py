"""Steering and reporting from the command line: locally and through `tickrail serve`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tickrail.sdk import load_graph
from tickrail.sdk.client import TickrailClient
from tickrail.services.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_usage_sums_every_recorded_execution(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = cli_json(capsys, "run", str(EXAMPLES / "coding_agent.py"), "--json", "--quiet")
    _, by_node = cli_json(capsys, "usage", "--by", "node", "--json")
    assert sum(r["tokens_in"] + r["tokens_out"] for r in by_node) == run["tokens"]
    assert sum(r["executions"] for r in by_node) == run["executions"]
    _, by_lifetime = cli_json(capsys, "usage", "--by", "lifetime", "--json")
    assert [r["key"] for r in by_lifetime] == [run["lifetime_id"]]


def test_watch_prints_decisions_until_the_end(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = cli_json(capsys, "run", str(EXAMPLES / "hello.yaml"), "--json", "--quiet")
    assert main(["lifetimes", "watch", run["lifetime_id"]]) == 0
    out = capsys.readouterr().out
    assert "greet" in out and "COMPLETED" in out


def test_abort_a_paused_lifetime_here_and_refuse_steering_an_ended_one(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, waiting = cli_json(capsys, "run", str(EXAMPLES / "human_review.py"), "--json", "--quiet")
    assert code == 3
    assert main(["lifetimes", "abort", waiting["lifetime_id"], "--reason", "withdrawn"]) == 0
    capsys.readouterr()
    _, shown = cli_json(capsys, "lifetimes", "show", waiting["lifetime_id"], "--json")
    assert shown["status"] == "ABORTED"
    assert main(["lifetimes", "abort", waiting["lifetime_id"]]) == 2
    assert "ABORTED already" in capsys.readouterr().err
    assert main(["lifetimes", "pause", waiting["lifetime_id"]]) == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(address: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """Start ``tickrail serve`` on ``address`` and return once it accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickrail.services.cli.main", "serve", "--address", address, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    host, port = address.split(":")
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
            return proc
        except OSError:
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.1)


def stop_server(proc: Any) -> None:
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture
def server(here: Path) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    proc = start_server(
        address,
        "--graph",
        str(EXAMPLES / "human_review.py"),
        "--insecure",
        "--home",
        str(here / "srv"),
    )
    try:
        yield address
    finally:
        stop_server(proc)


async def test_the_cli_steers_a_lifetime_through_a_server(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = load_graph(str(EXAMPLES / "human_review.py"))
    async with TickrailClient(server, tenant="default") as client:
        lifetime_id = await client.start(graph, {"change": "enable caching"})
        async for event in client.watch(lifetime_id, follow_forever=True):
            if event.WhichOneof("kind") == "paused":
                break
    remote = ("--server", server)
    code, listed = await _cli(capsys, "lifetimes", "list", "--json", *remote)
    assert code == 0 and [r["lifetime_id"] for r in listed] == [lifetime_id]
    code, shown = await _cli(capsys, "lifetimes", "show", lifetime_id, "--json", *remote)
    asked = {
        e["header"]["name"]: e["header"]["exec_id"]
        for e in shown["executions"]
        if e["header"]["status"] == "EXECUTION_STATUS_WAITING"
    }
    for name in ["security_review", "legal_review"]:
        code, resumed = await _cli(
            capsys,
            "lifetimes",
            "resume",
            lifetime_id,
            "--exec",
            asked[name],
            "--input",
            '"approve"',
            "--json",
            "--quiet",
            *remote,
        )
    assert code == 0 and resumed["status"] == "COMPLETED"
    assert resumed["output"]["value"]["approved"] is True
    code, usage = await _cli(capsys, "usage", "--by", "node", "--json", *remote)
    assert code == 0 and {r["key"] for r in usage} >= {"human_review/propose"}


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    import asyncio

    # main() runs its own event loop; keep it off this test's loop
    code = await asyncio.to_thread(main, list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_serve_over_tls_with_a_tenant_token(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = here / "cert.pem", here / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "ACME_TOKEN": "s3cret-token-for-acme"}
    proc = start_server(
        address,
        "--graph",
        str(EXAMPLES / "hello.yaml"),
        "--token",
        "acme=ACME_TOKEN",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--home",
        str(here / "srv"),
        env=env,
    )
    try:
        remote = ["--server", address, "--tenant", "acme", "--ca-cert", str(cert), "--json"]
        monkeypatch.setenv("TICKRAIL_TOKEN", "s3cret-token-for-acme")
        assert main(["lifetimes", "list", *remote]) == 0
        assert json.loads(capsys.readouterr().out) == []
        plaintext = ["--server", address, "--tenant", "acme", "--json"]
        assert main(["lifetimes", "list", *plaintext]) == 2  # TLS only
        capsys.readouterr()
        monkeypatch.setenv("TICKRAIL_TOKEN", "wrong-token-wrong-token")
        assert main(["lifetimes", "list", *remote]) == 2
        assert "token" in capsys.readouterr().err.lower()
    finally:
        stop_server(proc)
