"""The design brief's Coding Agent diagram runs as drawn, embedded, through the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.seed_agent import APP, EXAMPLE, REJECT, STORAGE, drive, header, recorded
from tickrail.sdk._payload import read_value
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.cli.main import main


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else out


def value(payload: pb.Payload) -> Any:
    return asyncio.run(read_value(payload, None))


def check_the_diagram_ran_as_drawn(
    events: list[pb.LifetimeEvent], executions: list[pb.ExecutionEnvelope]
) -> None:
    done = [h for h in map(header, executions) if h.status == pb.EXECUTION_STATUS_SUCCEEDED]
    names = [h.name for h in done]
    # the clarification loop: the person was asked twice at the first human node
    assert names.count("human_in_the_loop") == 2
    # RAG Lookup -> Submit to LLM is a Task -> Task edge: no Plan runs between them
    for h in done:
        if h.name == "submit_to_llm":
            assert (h.from_node, h.edge_taken) == ("rag_lookup", pb.EDGE_KIND_NORMAL)
    # the refine loop: candidate 1 failed validation once and was generated again
    validations = [e.task for e in executions if header(e).name == "validate_1"]
    assert value(validations[0].result.output)["passed"] is False
    assert names.count("code_gen_1") >= 2
    assert any(h.from_node == "pass_fail_1" for h in done if h.name == "code_gen_1")
    assert any(h.from_node == "elucidate_or_execute" for h in done if h.name == "code_gen_1")
    # one human accept/reject Task, dispatched by the branches' Pass/Fail Plans
    reviews = [h for h in done if h.name == "human_accept_reject"]
    assert len(reviews) >= 2 and all(h.from_node.startswith("pass_fail_") for h in reviews)
    # a reject went back to Elucidate / Do Execute, then the accept took the FINAL edge
    review_results = [e.task.result for e in executions if header(e) in reviews]
    assert [r.finish for r in review_results] == [False] * (len(reviews) - 1) + [True]
    completed = events[-1]
    assert completed.WhichOneof("kind") == "completed"
    assert value(completed.completed.output)["accepted"]["version"] >= 1
    # the stand-in model calls recorded usage
    used = sum(
        e.task.telemetry.tokens_in for e in executions if e.WhichOneof("execution") == "task"
    )
    assert used > 0


def test_the_seed_coding_agent_runs_as_drawn_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, run = cli_json(
        capsys, "run", str(EXAMPLE), "--input", '{"app": "todo list"}', "--json", "--quiet"
    )
    assert code == 3 and run["status"] == "PAUSED"
    lifetime_id = run["lifetime_id"]
    store_url = f"sqlite:///{tmp_path / '.tickrail' / 'state.db'}"

    def resume(exec_id: str, reply: str) -> int:
        args = ["lifetimes", "resume", lifetime_id, "--exec", exec_id, "--input", reply]
        code = main([*args, "--json", "--quiet"])
        capsys.readouterr()
        return code

    answered = drive(store_url, lifetime_id, resume)
    assert [a for _, a in answered][:2] == [APP, STORAGE]
    assert [a for _, a in answered][2:] == [REJECT, "accept"]
    events, executions = asyncio.run(recorded(store_url, lifetime_id))
    check_the_diagram_ran_as_drawn(events, executions)

    code, replay = cli_json(capsys, "replay", lifetime_id, "--json")
    assert code == 0 and replay["ok"], replay

    # fork at candidate 1's failed validation, edited to pass: it goes to the person
    first = next(e for e in executions if header(e).name == "validate_1")
    report = value(first.task.result.output)
    edited = tmp_path / "passed.json"
    edited.write_text(json.dumps({**report, "passed": True, "issues": []}))
    code, forked = cli_json(
        capsys,
        "fork",
        lifetime_id,
        "--from",
        header(first).exec_id,
        "--result",
        str(edited),
        "--json",
        "--quiet",
    )
    assert code == 3 and forked["status"] == "PAUSED", forked
    _, fork_execs = asyncio.run(recorded(store_url, forked["lifetime_id"]))
    forked_exec = header(first).exec_id.replace(lifetime_id, forked["lifetime_id"])
    after = [e.plan for e in fork_execs if forked_exec in e.plan.header.parent_exec_ids]
    assert [list(p.result.next_task_names) for p in after] == [["human_accept_reject"]]
    code, replay = cli_json(capsys, "replay", forked["lifetime_id"], "--json")
    assert code == 0 and replay["ok"], replay
