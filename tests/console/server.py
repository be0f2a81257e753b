"""Start a real ``tickrail ui`` (and the examples it shows) for the console tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ARTIFACTS = Path(os.environ.get("TICKRAIL_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(cwd: Path, *argv: str, env: dict[str, str] | None = None) -> Any:
    """Run ``tickrail ARGV --json --quiet`` in ``cwd``; returns the JSON it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "tickrail.services.cli.main", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 3), done.stderr
    return json.loads(done.stdout)


def run_example(cwd: Path, name: str, *argv: str, env: dict[str, str] | None = None) -> str:
    """Run one example to its end (or its first question); returns the lifetime id."""
    out = cli(cwd, "run", str(EXAMPLES / name), "--json", "--quiet", *argv, env=env)
    return str(out["lifetime_id"])


class Console:
    """A ``tickrail ui`` process; ``url`` once it accepts connections."""

    def __init__(
        self, cwd: Path, *argv: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"ui-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tickrail.services.cli.main",
                    "ui",
                    "--address",
                    f"127.0.0.1:{self.port}",
                    *argv,
                ],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"tickrail ui exited:\n{self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"never listened:\n{self.log.read_text()}"
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        assert code == 0, f"tickrail ui exited {code}:\n{self.log.read_text()}"


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless (a browser download is not possible here).

    Missing, the test is skipped, or fails under TICKRAIL_REQUIRE_SERVICES=1 (CI).
    """
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("TICKRAIL_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def shoot(page: Any, name: str, docs: Sequence[str] = ()) -> Path:
    """A full-page screenshot under test-artifacts/console/ (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
