"""Secrets are never printed: every command, run with password-bearing URLs.

Every URL setting carries a secret (a password in the user info, a token or
signature in the query); every CLI command runs against them (the endpoints
refuse connections, so each command fails the way it would on a real
outage) and its stdout and stderr, logs and tracebacks included, must not
contain the secret anywhere.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tickrail.sdk._redact import redact_text, redact_url

SECRET = "Pa55w0rdXyZZy"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


COMMANDS = [
    ["migrate"],
    ["lifetimes", "list"],
    ["lifetimes", "show", "L1"],
    ["lifetimes", "watch", "L1"],
    ["lifetimes", "pause", "L1"],
    ["lifetimes", "abort", "L1"],
    ["lifetimes", "resume", "L1"],
    ["usage"],
    ["replay", "L1"],
    ["fork", "L1", "--from", "L1.1.1"],
    ["run", "examples/hello.yaml"],
    ["policy", "test", "policies/default.yaml", "--lifetime", "L1"],
    ["data-plane", "--port", "0"],
    ["control-plane", "--port", "0"],
    ["executor", "--graph", "examples/hello.yaml", "--port", "0"],
]


def _env(tmp_path: Path, profile: str) -> dict[str, str]:
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}
    env.update(
        TICKRAIL_PROFILE=profile,
        TICKRAIL_HOME=str(tmp_path / "home"),
        TICKRAIL_STORE_URL=f"postgresql://tickrail:{SECRET}@127.0.0.1:{port}/db?password={SECRET}",
        TICKRAIL_BUS_URL=f"kafka://127.0.0.1:{port}?sasl_password={SECRET}",
        TICKRAIL_KV_URL=f"redis://:{SECRET}@127.0.0.1:{port}/0?token={SECRET}",
        TICKRAIL_BLOB_URL=f"s3://bucket/p?endpoint_url=http://127.0.0.1:{port}&sig={SECRET}",
        TICKRAIL_DISPATCH_SECRET="d" * 32,
        TICKRAIL_SHUTDOWN_GRACE_S="1",
        PYTHONWARNINGS="ignore",
    )
    return env


@pytest.mark.timeout(600)
@pytest.mark.parametrize("profile", ["cloud", "embedded"])
def test_no_command_prints_a_secret_from_a_url(tmp_path: Path, profile: str) -> None:
    env = _env(tmp_path, profile)
    root = Path(__file__).resolve().parents[2]
    leaked: list[str] = []
    # All at once: each mostly waits on a refused connection.
    procs = [
        (
            argv,
            subprocess.Popen(
                [sys.executable, "-m", "tickrail.services.cli.main", "-v", *argv],
                env=env,
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for argv in COMMANDS
    ]
    for argv, proc in procs:
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:  # a role process retrying: what it said so far
            proc.kill()
            out, err = proc.communicate()
        output = _text(out) + _text(err)
        assert output.strip(), f"{argv} printed nothing: the test would prove nothing"
        if SECRET in output:
            leaked.append(f"{' '.join(argv)}:\n{output[-2000:]}")
    assert not leaked, "\n\n".join(leaked)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://user:{SECRET}@host:5432/db",
        f"redis://:{SECRET}@host/0",
        f"https://host/path?X-Amz-Signature={SECRET}&X-Amz-Credential={SECRET}&ok=1",
        f"kafka://h:9092?sasl_password={SECRET}",
        f"s3://b/p?endpoint_url=http://h:1&access_token={SECRET}",
        f"postgresql://user:{SECRET}@[::1/db",  # not parseable: still masked
        f"amqp://u:{SECRET}@h/v?api_key={SECRET}&private_key={SECRET}",
    ],
)
def test_redact_url_masks_passwords_and_secret_parameters(url: str) -> None:
    shown = redact_url(url)
    assert SECRET not in shown and "***" in shown
    assert SECRET not in redact_text(f"cannot connect to {url}: refused")


def test_redact_url_keeps_what_is_not_secret() -> None:
    assert redact_url("postgresql://tickrail@db:5432/x?schema=s") == (
        "postgresql://tickrail@db:5432/x?schema=s"
    )
    assert redact_url("sqlite:///tmp/state.db?synchronous=FULL") == (
        "sqlite:///tmp/state.db?synchronous=FULL"
    )
    assert redact_url("postgresql://u:p@h/d") == "postgresql://u:***@h/d"
