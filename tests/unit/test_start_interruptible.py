"""A role process that is still starting (here: connecting to a broker that accepts
connections and never answers) stops at once on SIGTERM, with exit status 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    closing = threading.Event()

    def accept() -> None:
        while not closing.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    closing.set()
    server.close()
    for conn in held:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_during_start_stops_the_role(silent_port: int, tmp_path: Path) -> None:
    config = tmp_path / "tickrail.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "profile": "cloud",
                # Far longer than the test waits: only the SIGTERM can end the start.
                "bus_url": f"kafka://127.0.0.1:{silent_port}?connect_timeout=600",
                "store_url": f"postgresql://u@127.0.0.1:{free_port()}/db",
                "blob_url": f"file://{tmp_path}/blobs",
                "kv_url": "memory://",
            }
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tickrail.services.cli.main", "data-plane"),
            *("--config", str(config), "--port", str(port)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the health server answers while the role is still starting
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "the health server never answered"
            time.sleep(0.1)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
            raise AssertionError("ready while still connecting")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "stopped during startup" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
