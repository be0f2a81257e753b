"""A Task asks a person; the lifetime waits; answers arrive later, from other processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tickrail.services.cli.main import main

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "human_review.py")


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else out


def waiting_execs(capsys: pytest.CaptureFixture[str], lifetime_id: str) -> dict[str, str]:
    _, shown = cli_json(capsys, "lifetimes", "show", lifetime_id, "--json")
    latest: dict[str, dict[str, Any]] = {}
    for e in shown["executions"]:
        latest[e["header"]["name"]] = e["header"]
    return {
        name: h["exec_id"]
        for name, h in latest.items()
        if h["status"] == "EXECUTION_STATUS_WAITING"
    }


@pytest.mark.parametrize("first", ["legal_review", "security_review"])
def test_two_parallel_questions_answered_one_at_a_time_in_either_order(
    first: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code, run = cli_json(capsys, "run", EXAMPLE, "--json", "--quiet")
    assert code == 3 and run["status"] == "PAUSED"
    lifetime_id = run["lifetime_id"]
    asked = waiting_execs(capsys, lifetime_id)
    assert sorted(asked) == ["legal_review", "security_review"]

    # two questions are open: an answer must say which one it is for
    assert main(["lifetimes", "resume", lifetime_id, "--input", '"approve"']) == 2
    err = capsys.readouterr().err
    assert "say which waiting execution the input answers" in err and "(use --exec)" in err
    assert asked["legal_review"] in err and asked["security_review"] in err

    second = next(name for name in asked if name != first)
    code, after_first = cli_json(
        capsys,
        "lifetimes",
        "resume",
        lifetime_id,
        "--exec",
        asked[first],
        "--input",
        '"approve"',
        "--json",
        "--quiet",
    )
    assert code == 3 and after_first["status"] == "PAUSED"
    assert list(waiting_execs(capsys, lifetime_id)) == [second]

    code, done = cli_json(
        capsys,
        "lifetimes",
        "resume",
        lifetime_id,
        "--exec",
        asked[second],
        "--input",
        '"approve, with a canary"',
        "--json",
        "--quiet",
    )
    assert code == 0 and done["status"] == "COMPLETED"
    assert done["output"]["value"] == {
        "approved": True,
        "votes": {"legal_review": True, "security_review": True},
    }
    # the answers are inputs like any other: the log re-derives to the same decisions
    code, report = cli_json(capsys, "replay", lifetime_id, "--rerun-plans", "--json")
    assert code == 0 and report["ok"], report
