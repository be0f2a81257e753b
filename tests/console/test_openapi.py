"""Schemathesis against the console's /openapi.json: no 5xx, every answer as documented.

Its own console (the fuzzer may pause, abort or fork what it finds), insecure
on loopback, with the double-submit CSRF cookie and header set so POSTs reach
the handlers instead of stopping at the CSRF check. Examples per operation
are bounded and the seed fixed, so the run is short and repeatable.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the console needs the ui extra")
pytest.importorskip("schemathesis")

from .server import ARTIFACTS, Console, run_example

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


def test_the_api_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    run_example(tmp_path, "coding_agent.py")
    run_example(tmp_path, "hello.yaml", "--input", '{"name": "Ada"}')
    console = Console(tmp_path)
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    try:
        done = subprocess.run(
            [
                st,
                "run",
                f"{console.url}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                "6",
                "--seed",
                "13",
                "--request-timeout",
                "20",
                "--header",
                "X-CSRF-Token: fuzz-csrf-token",
                "--header",
                "Cookie: tickrail_csrf=fuzz-csrf-token",
                "--report",
                "junit",
                "--report-dir",
                str(ARTIFACTS / "schemathesis"),
            ],
            cwd=tmp_path,  # schemathesis keeps a cache in its working directory
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        console.stop()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
