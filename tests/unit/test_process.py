"""A role as its own process: health endpoints, metrics and a clean SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("role", ["data-plane", "control-plane"])
def test_a_role_process_serves_probes_and_stops_cleanly_on_sigterm(
    role: str, tmp_path: Path
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickrail.services.cli.main",
            role,
            "--port",
            str(port),
            "--home",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or too busy to answer in time (TimeoutError)
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.1)
        assert get(port, "/healthz") == (200, "ok\n")
        status, metrics = get(port, "/metrics")
        assert status == 200 and 'tickrail_consumer_lag{role="' in metrics
        assert get(port, "/nope")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_an_executor_without_graphs_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tickrail.services.cli.main", "executor", "--home", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "an executor needs graphs to serve" in result.stderr
