"""Replay re-derives every decision from the log; tampering and random plans are caught."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path / ".tickrail"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main(["run", *argv, "--json", "--quiet"])
    return str(json.loads(capsys.readouterr().out)["lifetime_id"])


def test_every_example_lifetime_replays_ok_and_its_plans_rerun_identically(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = tmp_path / "budget.yaml"
    budget.write_text(
        "apiVersion: tickrail/v1\nkind: GuardrailPolicy\nrules:\n"
        "  - name: budget\n    scope: lifetime\n"
        "    condition: lifetime.sum.tokens_used > 1000\n"
        "    action: ABORT_LIFETIME\n    message: over budget\n"
    )
    lifetimes = [
        run(capsys, str(EXAMPLES / "coding_agent.py")),
        run(capsys, str(EXAMPLES / "parallel_tools.py")),
        run(capsys, str(EXAMPLES / "hello.yaml")),
        run(capsys, str(EXAMPLES / "coding_agent.py"), "--policy", str(budget)),  # aborted
        run(capsys, str(EXAMPLES / "human_review.py")),  # paused, waiting
    ]
    for lifetime_id in lifetimes:
        code, report = cli_json(capsys, "replay", lifetime_id, "--rerun-plans", "--json")
        assert code == 0, report
        assert report["ok"] and report["checked"] > 0 and report["plan_differences"] == []


def test_a_tampered_decision_is_reported_with_its_event(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lifetime_id = run(capsys, str(EXAMPLES / "coding_agent.py"))
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    db = sqlite3.connect(copy / "state.db")
    # the copy only: lift the append-only guard and rewrite one routing decision
    db.execute("DROP TRIGGER events_append_only_update")
    seq, body = db.execute(
        "SELECT seq, body FROM events WHERE lifetime_id = ? AND kind = 'routed'"
        " ORDER BY seq LIMIT 1 OFFSET 3",
        (lifetime_id,),
    ).fetchone()
    event = pb.LifetimeEvent.FromString(body)
    assert event.routed.dispatched, "expected a routing decision that dispatched work"
    event.routed.dispatched[0].name = "package"  # skip straight to the end
    db.execute("UPDATE events SET body = ? WHERE seq = ?", (event.SerializeToString(), seq))
    db.commit()
    db.close()
    code, report = cli_json(capsys, "replay", lifetime_id, "--json", "--home", str(copy))
    assert code == 1 and not report["ok"]
    assert report["divergence"]["seq"] == seq
    assert report["divergence"]["event_id"] == event.event_id
    assert 'name: "package"' in report["divergence"]["expected"]
    assert 'name: "package"' not in report["divergence"]["got"]
    # the original is untouched and still replays clean
    assert cli_json(capsys, "replay", lifetime_id, "--json")[0] == 0


def test_a_plan_that_picks_a_random_branch_is_reported_by_rerun_plans(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = tmp_path / "coin.py"
    graph.write_text(
        "import random\n"
        "from sdk import AgentGraph, Finish, Next, Plan, Task, final, normal\n"
        "class Flip(Plan):\n"
        "    async def plan(self, ctx):\n"
        "        if ctx.upstream:\n"
        "            return Finish(ctx.upstream[0].value)\n"
        "        return Next(random.choice(['heads', 'tails']))\n"
        "class Side(Task):\n"
        "    def __init__(self, name):\n"
        "        self.name = name\n"
        "    async def run(self, ctx):\n"
        "        return self.name\n"
        "graph = AgentGraph('coin', version='1.0.0', entry='flip',\n"
        "    nodes=[Flip(), Side('heads'), Side('tails')],\n"
        "    edges=[normal('flip', 'heads'), normal('flip', 'tails'), normal('heads', 'flip'),\n"
        "           normal('tails', 'flip'), final('flip')])\n"
    )
    lifetime_id = run(capsys, str(graph))
    assert cli_json(capsys, "replay", lifetime_id, "--json")[0] == 0  # the log is consistent
    # re-running the first plan 40 times: a fair coin differs at least once
    found = []
    for _ in range(40):
        code, report = cli_json(capsys, "replay", lifetime_id, "--rerun-plans", "--json")
        found.extend(report["plan_differences"])
        if found:
            break
    assert found and found[0]["name"] == "flip"
    assert code == 1 and not report["ok"]


def test_lifetimes_with_retries_and_a_pause_then_resume_replay_ok(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counter = tmp_path / "calls"
    graph = tmp_path / "flaky.py"
    graph.write_text(
        "from pathlib import Path\n"
        "from sdk import AgentGraph, Retry, Task, final\n"
        "class Flaky(Task):\n"
        "    retry = Retry(max_attempts=3, backoff=0.001)\n"
        "    async def run(self, ctx):\n"
        f"        p = Path({str(counter)!r})\n"
        "        n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "        p.write_text(str(n))\n"
        "        if n < 3:\n"
        "            raise ConnectionError(f'try {n}')\n"
        "        return n\n"
        "graph = AgentGraph('flaky', version='1.0.0', entry='flaky', nodes=[Flaky()],\n"
        "    edges=[final('flaky')])\n"
    )
    retried = run(capsys, str(graph))
    hold = tmp_path / "hold.yaml"
    hold.write_text(
        "apiVersion: tickrail/v1\nkind: GuardrailPolicy\nrules:\n"
        "  - name: hold\n    scope: execution\n"
        '    condition: execution.name == "integrate"\n'
        "    action: PAUSE_LIFETIME\n    message: look first\n"
    )
    paused = run(capsys, str(EXAMPLES / "coding_agent.py"), "--policy", str(hold))
    assert main(["lifetimes", "resume", paused, "--quiet"]) == 0
    capsys.readouterr()
    for lifetime_id in (retried, paused):
        code, report = cli_json(capsys, "replay", lifetime_id, "--rerun-plans", "--json")
        assert code == 0 and report["ok"], report
    _, shown = cli_json(capsys, "lifetimes", "show", retried, "--json")
    assert [e["header"]["attempt"] for e in shown["executions"]] == [1, 2, 3]
