"""The tickrail command line, run in-process against a temporary state directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tickrail.services.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TICKRAIL_CONFIG", raising=False)
    return tmp_path / ".tickrail"


def nanos(stamp: str) -> int:
    """RFC 3339 from MessageToDict (0-9 fraction digits) -> comparable integer."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp())
    return seconds * 10**9 + int(fraction.ljust(9, "0"))


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_parallel_tools_runs_the_tools_concurrently(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, summary = run_json(
        capsys, "run", str(EXAMPLES / "parallel_tools.py"), "--json", "--quiet"
    )
    assert code == 0 and summary["status"] == "COMPLETED"
    assert summary["executions"] == 6 and summary["tokens"] == 540
    code, shown = run_json(capsys, "lifetimes", "show", str(summary["lifetime_id"]), "--json")
    tools = [e["header"] for e in shown["executions"] if e["kind"] == "task"][:3]  # type: ignore[index, union-attr]
    assert sorted(h["name"] for h in tools) == ["stock_quote", "weather", "web_search"]
    # Concurrency shown by the record itself, not by a wall-clock limit: every tool
    # started before any of them finished.
    started = max(nanos(h["started_at"]) for h in tools)
    assert started < min(nanos(h["finished_at"]) for h in tools)


def test_coding_agent_show_lists_alternating_executions(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, summary = run_json(capsys, "run", str(EXAMPLES / "coding_agent.py"), "--json")
    assert code == 0
    code, shown = run_json(capsys, "lifetimes", "show", str(summary["lifetime_id"]), "--json")
    assert code == 0 and shown["status"] == "COMPLETED"
    executions = shown["executions"]
    assert isinstance(executions, list) and len(executions) == summary["executions"]
    assert [e["seq"] for e in executions] == sorted(e["seq"] for e in executions)
    for e in executions:
        assert {"header", "kind"} <= e.keys()
        assert e["header"]["lifetime_id"] == summary["lifetime_id"]
    # along each branch (parent links), Tasks and Plans alternate
    by_id = {e["header"]["exec_id"]: e for e in executions}
    for e in executions:
        for parent in e["header"].get("parent_exec_ids", []):
            assert by_id[parent]["kind"] != e["kind"]
    assert any(e["kind"] == "task" and e.get("telemetry", {}).get("tokens_in") for e in executions)


def test_hello_yaml_and_lifetimes_list(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run_json(
        capsys,
        "run",
        str(EXAMPLES / "hello.yaml"),
        "--input",
        '{"name": "Ada"}',
        "--json",
        "--quiet",
    )
    assert code == 0 and summary["output"]["value"] == "Hello, Ada!"  # type: ignore[index]
    assert main(["lifetimes", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["lifetime_id"] == summary["lifetime_id"] and listed["graph_id"] == "hello"
    assert main(["lifetimes", "show", str(summary["lifetime_id"])]) == 0
    assert "greet" in capsys.readouterr().out


def test_bad_inputs_get_clear_errors(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(EXAMPLES / "hello.yaml"), "--input", "{nope"]) == 2
    assert "--input is not valid JSON (line 1, column 2)" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["lifetimes", "show", "no-such-id"]) == 2
    assert "no lifetime 'no-such-id'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nentry: x\nnodes: []\nedges: []\n")
    assert main(["run", str(bad)]) == 2
    assert "entry node 'x' is not defined" in capsys.readouterr().err


def test_a_failed_lifetime_exits_1(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = tmp_path / "fails.py"
    graph.write_text(
        "from sdk import AgentGraph, Task, final\n"
        "class Boom(Task):\n"
        "    async def run(self, ctx):\n"
        "        raise RuntimeError('kaboom')\n"
        "graph = AgentGraph('fails', version='1.0.0', entry='boom', nodes=[Boom()],"
        " edges=[final('boom')])\n"
    )
    code, summary = run_json(capsys, "run", str(graph), "--json", "--quiet")
    assert code == 1 and summary["status"] == "FAILED"
    assert "RuntimeError: kaboom" in str(summary["reason"])


def test_migrate_is_idempotent(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    first = capsys.readouterr().out
    assert "applied migration(s) 1" in first, first
    assert main(["migrate"]) == 0
    assert "already up to date" in capsys.readouterr().out
