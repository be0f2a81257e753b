"""Secrets are never printed, where a command reaches a real store (Postgres).

The machine's Postgres ignores the password (trust auth), so ``migrate``
succeeds and prints the store URL; ``lifetimes show``/``watch`` reach the store
and say the lifetime is missing. None may show the password or the secret
query parameters.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import random_name
from tests.unit.test_integrity_secrets import SECRET, _env


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_commands_that_reach_the_store_print_it_redacted(tmp_path: Path, postgres_url: str) -> None:
    """The machine's Postgres ignores the password (trust auth), so migrate succeeds and
    prints the URL; show and watch reach it and find nothing."""
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_url)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    schema = random_name("redact_")
    url = f"postgresql://{user}:{SECRET}@{host}{parts.path}?schema={schema}&password={SECRET}"
    env = _env(tmp_path, "embedded")
    env["TICKRAIL_STORE_URL"] = url
    for other in ("TICKRAIL_BUS_URL", "TICKRAIL_KV_URL", "TICKRAIL_BLOB_URL"):
        env.pop(other)  # the embedded defaults: only the store is remote here
    env["PGPASSWORD"] = SECRET  # what a deployment would do; never printed either
    root = Path(__file__).resolve().parents[2]
    try:
        for argv in (["migrate"], ["lifetimes", "show", "L1"], ["lifetimes", "watch", "L1"]):
            done = subprocess.run(
                [sys.executable, "-m", "tickrail.services.cli.main", "-v", *argv],
                env=env,
                cwd=root,
                capture_output=True,
                text=True,
                timeout=120,
            )
            output = done.stdout + done.stderr
            if argv == ["migrate"]:
                assert host in output, output  # the URL is printed...
            assert SECRET not in output, output  # ...without its secrets
    finally:
        subprocess.run(
            ["psql", postgres_url, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
            capture_output=True,
            check=False,
        )
