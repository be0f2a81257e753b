"""Log lines: timestamps always; JSON lines with lifetime, exec and trace ids."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tickrail.services import tracing

ROOT = Path(__file__).resolve().parents[2]

GRAPH = """
import logging

from tickrail import AgentGraph, Finish, Next, Plan, Task, final, join, parallel

log = logging.getLogger("agent")


class Fan(Plan):
    async def plan(self, ctx):
        if ctx.upstream:
            return Finish("done")
        return Next(["lookup", "blocking"])


class Lookup(Task):
    async def run(self, ctx):
        log.warning("looking up %s", "async")
        return 1


class Blocking(Task):
    def run(self, ctx):  # runs in a worker thread
        log.warning("looking up %s", "thread")
        return 2


graph = AgentGraph(
    "logged",
    version="1.0.0",
    entry="fan",
    nodes=[Fan(), Lookup(), Blocking()],
    edges=[parallel("fan", ["lookup", "blocking"]), join(["lookup", "blocking"], "fan"),
           final("fan")],
)
"""
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def run(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    graph = tmp_path / "logged.py"
    graph.write_text(GRAPH)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TICKRAIL_"))}
    environ.update(env)
    return subprocess.run(
        [
            *(sys.executable, "-m", "tickrail.services.cli.main", "run", str(graph), "--quiet"),
            *("--home", str(tmp_path / "home"), *argv),
        ],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def objects(text: str) -> list[dict[str, Any]]:
    """Top-level JSON objects in text (pretty-printed or one per line)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while (j := text.find("{", i)) >= 0:
        obj, i = decoder.raw_decode(text, j)
        out.append(obj)
    return out


def json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in parsed:
        assert re.fullmatch(ISO, record["time"]), record
        assert {"level", "logger", "message"} <= set(record)
    return parsed


def agent_lines(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["message"]: r for r in records if r["logger"] == "agent"}


def test_json_lines_name_the_lifetime_and_execution(tmp_path: Path) -> None:
    result = run(tmp_path, "--json", TICKRAIL_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    lifetime_id = json.loads(result.stdout)["lifetime_id"]
    lines = agent_lines(json_lines(result.stderr))
    assert set(lines) == {"looking up async", "looking up thread"}
    for record in lines.values():
        assert record["level"] == "WARNING"
        assert record["lifetime_id"] == lifetime_id
        assert record["exec_id"].startswith(lifetime_id)
        assert "trace_id" not in record  # tracing is off: no trace to point at
    assert lines["looking up async"]["exec_id"] != lines["looking up thread"]["exec_id"]


def test_with_tracing_json_lines_carry_the_trace_and_span(tmp_path: Path) -> None:
    result = run(tmp_path, "--json", TICKRAIL_LOG_FORMAT="json", OTEL_TRACES_EXPORTER="console")
    assert result.returncode == 0, result.stderr
    printed = objects(result.stdout)
    (summary,) = [o for o in printed if "status" in o and "lifetime_id" in o]
    spans = {o["context"]["span_id"].removeprefix("0x"): o for o in printed if "context" in o}
    lines = agent_lines(json_lines(result.stderr))
    for record in lines.values():
        assert record["trace_id"] == tracing.trace_id_hex(summary["lifetime_id"])
        span = spans[record["span_id"]]  # the execution's span the line was logged in
        assert span["attributes"]["tickrail.exec_id"] == record["exec_id"]


def test_text_lines_start_with_a_timestamp(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "agent" in line]
    assert len(lines) == 2
    for line in lines:
        assert re.match(ISO + r" WARNING agent: looking up (async|thread)$", line), line


def test_the_log_format_setting_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "tickrail.yaml"
    config.write_text("log_format: json\n")
    result = run(tmp_path, "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert len(agent_lines(json_lines(result.stderr))) == 2


def test_an_unknown_log_format_is_refused(tmp_path: Path) -> None:
    result = run(tmp_path, TICKRAIL_LOG_FORMAT="xml")
    assert result.returncode == 2
    assert "TICKRAIL_LOG_FORMAT" in result.stderr and "text or json" in result.stderr
    config = tmp_path / "bad.yaml"
    config.write_text("log_format: yaml\n")
    result = run(tmp_path, "--config", str(config))
    assert result.returncode == 2 and "log_format must be text or json" in result.stderr
