"""Supervision: a role that fails is noticed at once, and startup can be stopped."""

from __future__ import annotations

import asyncio
import http.client
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tickrail.sdk.errors import RoleFailedError, StartupTimeoutError, TickrailError
from tickrail.services.config import Settings
from tickrail.services.control_plane.service import ControlPlane
from tickrail.services.executor.worker import Executor
from tickrail.services.process import serve
from tickrail.services.runtime import Runtime

from .graphs import loop_graph

ROOT = Path(__file__).resolve().parents[2]


async def exploding(self: ControlPlane, stopping: asyncio.Event, grace: float = 30.0) -> None:
    """The control plane's loop itself fails (a fault on one message no longer stops the
    role: it fails that lifetime, see test_integrity_roles.py)."""
    raise RuntimeError("the guard exploded")


def settings(tmp_path: Path, profile: str = "test", **kw: Any) -> Settings:
    return Settings(profile=profile, home=str(tmp_path / "state"), **kw)


@pytest.mark.parametrize("profile", ["test", "embedded"])
async def test_a_role_that_raises_makes_wait_fail_naming_it(
    tmp_path: Path, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ControlPlane, "run", exploding)
    graph = loop_graph(3)
    async with Runtime(settings(tmp_path, profile), [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph)
        with pytest.raises(RoleFailedError) as caught:
            await rt.wait(lifetime_id, timeout=60)  # fails long before: no TimeoutError
        assert caught.value.role == "control_plane"
        assert "control plane" in str(caught.value) and "the guard exploded" in str(caught.value)
        assert isinstance(caught.value.error, RuntimeError)
        # every later wait fails the same way, at once
        with pytest.raises(RoleFailedError, match="the guard exploded"):
            await rt.wait("another-lifetime", timeout=60)
        # the other roles are being stopped in order, without leaving the context
        assert rt.failure is not None and rt.failure.role == "control_plane"
        assert not rt.alive()
        async with asyncio.timeout(30):
            await asyncio.gather(*(t for _, _, t in rt._running.values()), return_exceptions=True)


async def test_many_concurrent_waits_all_end_when_a_role_fails_and_leave_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pending wait hears of a failure at once; finished, timed-out and
    cancelled waits unregister themselves (no per-wait state is left to scan)."""
    failing = asyncio.Event()

    async def fails_when_told(self: ControlPlane, stopping: asyncio.Event) -> None:
        await failing.wait()
        raise RuntimeError("told to fail")

    monkeypatch.setattr(ControlPlane, "run", fails_when_told)
    async with Runtime(settings(tmp_path), [loop_graph(1)]) as rt:
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done.set_result("answered")
        assert await rt.unless_failed(done) == "answered"
        with pytest.raises(TimeoutError):
            await rt.wait("never-started", timeout=0.01)
        cancelled = asyncio.ensure_future(rt.wait("never-started-either"))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert not rt._failure_waits

        waits = [asyncio.ensure_future(rt.wait(f"lifetime-{i}", timeout=60)) for i in range(500)]
        await asyncio.sleep(0)
        assert len(rt._failure_waits) == 500
        failing.set()
        results = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 30)
        assert all(isinstance(r, RoleFailedError) and r.role == "control_plane" for r in results)
        assert not rt._failure_waits


async def test_a_role_that_dies_on_its_own_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: Executor, stopping: asyncio.Event, grace: float = 30.0) -> None:
        raise ConnectionResetError("the executor lost its broker")

    monkeypatch.setattr(Executor, "run", broken)
    graph = loop_graph(1)
    with caplog.at_level(logging.ERROR, "tickrail.runtime"):
        async with Runtime(settings(tmp_path), [graph]) as rt:
            with pytest.raises(RoleFailedError) as caught:
                await rt.wait(await rt.start_lifetime(graph), timeout=60)
    assert caught.value.role == "executor"
    assert "the executor stopped with an error: ConnectionResetError" in str(caught.value)
    named = [r for r in caplog.records if "executor stopped with an error" in r.getMessage()]
    assert len(named) == 1  # logged once, not again on shutdown


async def test_a_role_that_returns_without_being_asked_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def quits(self: ControlPlane, stopping: asyncio.Event) -> None:
        return None

    monkeypatch.setattr(ControlPlane, "run", quits)
    async with Runtime(settings(tmp_path), [loop_graph(1)]) as rt:
        with pytest.raises(RoleFailedError, match=r"control plane .* without being asked"):
            await rt.wait(await rt.start_lifetime(loop_graph(1)), timeout=60)


async def test_a_role_process_exits_1_naming_the_failed_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: ControlPlane, stopping: asyncio.Event) -> None:
        raise RuntimeError("routing table on fire")

    monkeypatch.setattr(ControlPlane, "run", broken)
    with caplog.at_level(logging.ERROR):
        code = await asyncio.wait_for(
            serve(["control_plane"], settings(tmp_path, "embedded"), port=0), timeout=60
        )
    assert code == 1
    text = caplog.text
    assert "control plane stopped with an error: RuntimeError: routing table on fire" in text


# ---- startup against a dependency that accepts connections and never answers ---


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A TCP port whose kernel completes the handshake, then nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield int(server.getsockname()[1])


DEPENDENCIES = {
    # setting -> URL template, and the startup phase that waits on it
    "kafka bus": ("bus_url", "kafka://127.0.0.1:{port}", "opening the bus"),
    "postgres store": ("store_url", "postgresql://u@127.0.0.1:{port}/db", "opening the store"),
    "redis kv": ("kv_url", "redis://127.0.0.1:{port}/0", "opening the KV store"),
}


async def test_startup_gives_up_after_start_timeout_naming_what_it_waited_for(
    tmp_path: Path, blackhole: int
) -> None:
    s = settings(tmp_path, "embedded", kv_url=f"redis://127.0.0.1:{blackhole}/0")
    s.start_timeout_s = 0.5
    with pytest.raises(StartupTimeoutError) as caught:
        async with Runtime(s, []):
            pass
    assert caught.value.phase == "opening the KV store (redis)"
    assert "within 0.5 s" in str(caught.value) and "start_timeout_s" in str(caught.value)
    assert isinstance(caught.value, TickrailError)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def role_process(tmp_path: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    command: Sequence[str] = [
        sys.executable,
        "-m",
        "tickrail.services.cli.main",
        "control-plane",
        "--port",
        str(port),
        "--home",
        str(tmp_path),
    ]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**_clean_env(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}


def wait_for(proc: subprocess.Popen[str], port: int, phase: str) -> None:
    """Until /readyz says startup is at ``phase`` (the process is alive, not ready)."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            status, body = get(port, "/readyz")
            if status == 503 and phase in body:
                return
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            pass  # not listening yet, or slow to answer on a loaded machine
        assert time.monotonic() < deadline, f"never reached {phase!r}"
        time.sleep(0.05)


@pytest.mark.parametrize("dependency", list(DEPENDENCIES))
def test_sigterm_during_startup_stops_a_role_process(
    dependency: str, tmp_path: Path, blackhole: int
) -> None:
    setting, url, phase = DEPENDENCIES[dependency]
    port = free_port()
    env = {f"TICKRAIL_{setting.upper()}": url.format(port=blackhole)}
    proc = role_process(tmp_path, port, env)
    try:
        wait_for(proc, port, phase)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, output
        assert "stopped during startup" in output
        assert "Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_role_process_that_cannot_start_exits_1_naming_the_phase(
    tmp_path: Path, blackhole: int
) -> None:
    env = {
        "TICKRAIL_KV_URL": f"redis://127.0.0.1:{blackhole}/0",
        "TICKRAIL_START_TIMEOUT_S": "1",
    }
    proc = role_process(tmp_path, free_port(), env)
    try:
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, output
    assert "startup did not finish within 1 s (still opening the KV store (redis))" in output
    assert "Traceback" not in output


def test_tickrail_run_exits_1_naming_a_role_that_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI follows the lifetime through the lifecycle layer; a dead role must
    # end that follow at once with the role named, never leave it waiting.
    from tickrail.services.cli.main import main

    async def broken(self: ControlPlane, stopping: asyncio.Event) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("routing table on fire")

    monkeypatch.setattr(ControlPlane, "run", broken)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    code = main(["run", str(ROOT / "examples" / "hello.yaml"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    last = err.strip().splitlines()[-1]  # the log above it keeps the traceback, for a bug report
    assert last.startswith("tickrail: ") and "control plane" in last
    assert "routing table on fire" in last
    assert time.monotonic() - started < 60  # ended by the failure, not by a time-out
