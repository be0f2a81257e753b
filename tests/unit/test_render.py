"""How recorded lifetimes are shown: full ids and names, aligned; numbers as numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tickrail.sdk._payload import encode
from tickrail.sdk.client import Execution, LifetimeDetail, LifetimeInfo
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.cli import render
from tickrail.services.cli.main import main

LONG = "summarize_every_quarterly_report_in_the_archive"  # longer than any fixed column


def execution(seq: int, name: str, exec_id: str, tokens: int, status: int) -> Execution:
    envelope = pb.ExecutionEnvelope(
        task=pb.TaskExecution(
            header=pb.ExecutionHeader(
                name=name,
                exec_id=exec_id,
                input_id=exec_id.rpartition(".")[0],
                lifetime_id="L",
                attempt=1,
                iteration=1,
                status=status,
                kind=pb.NODE_KIND_TASK,
            ),
            telemetry=pb.PolicyTelemetry(tokens_in=tokens, tokens_out=2**40, cost_usd=0.5),
            result=pb.TaskResult(output=encode({"ok": True})),
        )
    )
    return Execution(seq=seq, envelope=envelope)


def started() -> pb.LifetimeEvent:
    event = pb.LifetimeEvent(
        event_id="L/started",
        lifetime_id="L",
        started=pb.LifetimeStarted(graph=pb.GraphSpec(graph_id="g", version="1.0.0")),
    )
    event.seq = 1
    return event


DETAIL = LifetimeDetail(
    info=LifetimeInfo(
        lifetime_id="L",
        tenant_id="a-tenant-with-a-long-name",
        graph_id="g",
        status="FAILED",
        started_at=datetime.fromtimestamp(1.0, UTC),
        updated_at=datetime.fromtimestamp(2.0, UTC),
        events=1,
    ),
    executions=[
        execution(2, "a", "L.1.1", 7, pb.EXECUTION_STATUS_SUCCEEDED),
        execution(3, LONG, "L.12345.10", 123_456, pb.EXECUTION_STATUS_FAILED),
    ],
    events=[started()],
)


def test_show_prints_every_exec_id_and_full_node_names_in_aligned_columns() -> None:
    text = render.lifetime_table(DETAIL)
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if "exec id" in line)
    rows = lines[header + 1 : header + 3]
    assert "L.1.1" in rows[0] and "L.12345.10" in rows[1]
    assert LONG in rows[1]
    # every column starts where its heading starts, however long the values
    for heading, values in [("exec id", ["L.1.1", "L.12345.10"]), ("node", ["a", LONG])]:
        at = lines[header].index(heading)
        assert [row[at:].split()[0] for row in rows] == values
    assert lines[header].index("kind") > lines[header].index("node") + len(LONG)
    # numbers right-aligned on their column's right edge
    right = lines[header].index("tokens") + len("tokens")
    assert rows[1][:right].endswith(f"{123_456 + 2**40:,}")


def test_json_renders_64_bit_integers_as_numbers() -> None:
    shown = render.lifetime_json(DETAIL)
    telemetry = [e["telemetry"] for e in shown["executions"]]
    assert [t["tokens_in"] for t in telemetry] == [7, 123_456]
    assert all(t["tokens_out"] == 2**40 and isinstance(t["tokens_out"], int) for t in telemetry)
    assert shown["totals"]["tokens"] == 7 + 123_456 + 2 * 2**40
    # nothing in the rendered JSON is a numeric string
    text = json.dumps(shown)
    assert '"tokens_in": "' not in text and '"tokens_out": "' not in text


def test_show_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    graph_file = tmp_path / "quiet_graph.py"
    graph_file.write_text(_GRAPH_SOURCE)
    assert main(["run", str(graph_file), "--json", "--quiet"]) == 0
    lifetime_id = json.loads(capsys.readouterr().out)["lifetime_id"]
    assert main(["lifetimes", "show", lifetime_id, "--json"]) == 0
    (shown,) = json.loads(capsys.readouterr().out)["executions"]
    assert shown["telemetry"]["tokens_in"] == 0 and shown["telemetry"]["tokens_out"] == 0
    assert main(["lifetimes", "show", lifetime_id]) == 0
    text = capsys.readouterr().out
    assert shown["header"]["exec_id"] in text and LONG in text


_GRAPH_SOURCE = f'''
from tickrail import AgentGraph, Task, final


class Quiet(Task):
    name = "{LONG}"

    async def run(self, ctx):
        return "done"


graph = AgentGraph(
    "quiet", version="1.0.0", entry="{LONG}", nodes=[Quiet()], edges=[final("{LONG}")]
)
'''
