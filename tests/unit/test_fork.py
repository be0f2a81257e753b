"""Fork a recorded lifetime from any execution, with or without an edited result."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tickrail.sdk import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Task,
    TaskContext,
    final,
    join,
    parallel,
)
from tickrail.sdk._payload import encode
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.cli.main import main
from tickrail.services.config import Settings
from tickrail.services.control_plane.fork import fork_lifetime
from tickrail.services.control_plane.replay import replay_lifetime
from tickrail.services.runtime import Runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def executions(capsys: pytest.CaptureFixture[str], lifetime_id: str) -> list[dict[str, Any]]:
    code, shown = cli_json(capsys, "lifetimes", "show", lifetime_id, "--json")
    assert code == 0
    return list(shown["executions"])


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_fork_with_an_edited_result_keeps_the_prefix_and_follows_the_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, original = cli_json(capsys, "run", str(EXAMPLES / "coding_agent.py"), "--json", "--quiet")
    assert code == 0
    before = executions(capsys, original["lifetime_id"])
    first_test = next(e for e in before if e["header"]["name"] == "test_api")
    report = first_test["result"]["output"]["value"]
    assert report["passed"] is False  # the first validation fails in the recording
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**report, "passed": True, "failures": []}))

    code, forked = cli_json(
        capsys,
        "fork",
        original["lifetime_id"],
        "--from",
        first_test["header"]["exec_id"],
        "--result",
        str(edited),
        "--json",
        "--quiet",
    )
    assert code == 0 and forked["status"] == "COMPLETED"
    after = executions(capsys, forked["lifetime_id"])

    # earlier executions are the recorded ones (same nodes, same outputs)
    cut = before.index(first_test)
    assert [e["header"]["name"] for e in after[:cut]] == [e["header"]["name"] for e in before[:cut]]

    def decided(e: dict[str, Any]) -> Any:  # outputs and choices; ids differ by design
        r = e.get("result", {})
        return r.get("output"), r.get("next_task_names"), r.get("task_inputs")

    assert [decided(e) for e in after[:cut]] == [decided(e) for e in before[:cut]]
    assert all(e["header"]["lifetime_id"] == forked["lifetime_id"] for e in after)
    # later ones follow the edit: the api branch ships without a fix
    names = [e["header"]["name"] for e in after]
    assert "fix_api" not in names and "fix_tests" in names and "ship_api" in names
    # the fork records where it came from, and replays clean
    _, shown = cli_json(capsys, "lifetimes", "show", forked["lifetime_id"], "--json")
    started = next(e for e in shown["events"] if e["kind"] == "started")["started"]
    assert started["forked_from_lifetime"] == original["lifetime_id"]
    assert started["forked_from_exec"] == first_test["header"]["exec_id"]
    assert cli_json(capsys, "replay", forked["lifetime_id"], "--json")[1]["ok"]
    # the original is unchanged
    assert executions(capsys, original["lifetime_id"]) == before


def test_restarting_a_failed_lifetime_from_its_failed_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "service-is-up"
    graph = tmp_path / "needs_service.py"
    graph.write_text(
        "from pathlib import Path\n"
        "from sdk import AgentGraph, Finish, Next, Plan, Task, final, normal\n"
        "class Start(Plan):\n"
        "    async def plan(self, ctx):\n"
        "        return Finish(ctx.upstream[0].value) if ctx.upstream else Next('call')\n"
        "class Call(Task):\n"
        "    async def run(self, ctx):\n"
        f"        if not Path({str(marker)!r}).exists():\n"
        "            raise ConnectionError('service is down')\n"
        "        return 'called'\n"
        "graph = AgentGraph('needs_service', version='1.0.0', entry='start',\n"
        "    nodes=[Start(), Call()], edges=[normal('start', 'call'), normal('call', 'start'),\n"
        "    final('start')])\n"
    )
    code, failed = cli_json(capsys, "run", str(graph), "--json", "--quiet")
    assert code == 1 and failed["status"] == "FAILED"
    failed_exec = executions(capsys, failed["lifetime_id"])[-1]["header"]
    assert failed_exec["name"] == "call" and failed_exec["status"] == "EXECUTION_STATUS_FAILED"
    marker.touch()
    code, restarted = cli_json(
        capsys, "fork", failed["lifetime_id"], "--from", failed_exec["exec_id"], "--json", "--quiet"
    )
    assert code == 0 and restarted["status"] == "COMPLETED"
    assert restarted["output"]["value"] == "called"


def test_fork_refuses_a_plan_result_and_unknown_executions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, done = cli_json(capsys, "run", str(EXAMPLES / "hello.yaml"), "--json", "--quiet")
    assert code == 0
    assert main(["fork", done["lifetime_id"], "--from", "nope"]) == 2
    assert "has no execution 'nope'" in capsys.readouterr().err
    code, agent = cli_json(capsys, "run", str(EXAMPLES / "coding_agent.py"), "--json", "--quiet")
    assert code == 0
    plan_exec = executions(capsys, agent["lifetime_id"])[0]["header"]["exec_id"]
    result = tmp_path / "r.json"
    result.write_text("{}")
    assert main(["fork", agent["lifetime_id"], "--from", plan_exec, "--result", str(result)]) == 2
    assert "only a Task's result can be replaced" in capsys.readouterr().err


def test_fork_refuses_graph_code_of_another_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = tmp_path / "hello_v.py"
    source = (
        "from sdk import AgentGraph, Task, final\n"
        "class Hi(Task):\n"
        "    async def run(self, ctx):\n"
        "        return 'hi'\n"
        "graph = AgentGraph('hello_v', version='VERSION', entry='hi', nodes=[Hi()],"
        " edges=[final('hi')])\n"
    )
    graph.write_text(source.replace("VERSION", "1.0.0"))
    code, done = cli_json(capsys, "run", str(graph), "--json", "--quiet")
    assert code == 0
    first = executions(capsys, done["lifetime_id"])[0]["header"]["exec_id"]
    graph.write_text(source.replace("VERSION", "2.0.0"))  # the code moved on
    assert main(["fork", done["lifetime_id"], "--from", first]) == 2
    assert "is hello_v@2.0.0, but the lifetime runs hello_v@1.0.0" in capsys.readouterr().err


# ---- which recorded executions a fork keeps (on the in-process runtime) ----------


class Counted(Task):
    """Counts its runs, so a test sees whether the fork ran it again."""

    runs: ClassVar[Counter[str]] = Counter()

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        Counted.runs[self.name] += 1
        ctx.record_usage(tokens_in=100, tokens_out=10)
        return {"node": self.name, "run": Counted.runs[self.name]}


class Spread(Plan):
    async def plan(self, ctx: PlanContext) -> Next:
        return Next(list(BRANCHES))


class Collect(Plan):
    async def plan(self, ctx: PlanContext) -> Finish:
        return Finish({u.name: u.value for u in ctx.upstream})


BRANCHES = ("a", "b", "c")
SPREAD = AgentGraph(
    "spread",
    version="1.0.0",
    entry="spread",
    nodes=[Spread(), *(Counted(b) for b in BRANCHES), Collect()],
    edges=[parallel("spread", list(BRANCHES)), join(list(BRANCHES), "collect"), final("collect")],
)


async def routed_branches(rt: Runtime, lifetime_id: str) -> list[str]:
    """Exec ids of the branch executions, in the order the control plane routed them."""
    events = [pb.LifetimeEvent.FromString(r.body) for r in await rt.store.events(lifetime_id)]
    return [
        e.routed.exec_id
        for e in events
        if e.WhichOneof("kind") == "routed" and e.routed.name in BRANCHES
    ]


async def names_of(rt: Runtime, lifetime_id: str) -> list[str]:
    out = []
    for record in await rt.store.executions(lifetime_id):
        envelope = pb.ExecutionEnvelope.FromString(record.envelope)
        out.append((envelope.task if envelope.HasField("task") else envelope.plan).header.name)
    return out


@pytest.mark.parametrize("edit", [True, False], ids=["edited result", "node runs again"])
@pytest.mark.parametrize("at", [0, 1, 2], ids=["first", "second", "last"])
@pytest.mark.parametrize("rerun", [False, True], ids=["keep finished", "rerun finished"])
async def test_a_fork_keeps_the_other_branches_results_unless_asked_to_rerun_them(
    at: int, edit: bool, rerun: bool, tmp_path: Path
) -> None:
    settings = Settings(profile="test", home=str(tmp_path / "state"))
    async with Runtime(settings, [SPREAD]) as rt:
        original = await rt.start_lifetime(SPREAD)
        done = await rt.wait(original, timeout=20)
        assert done.WhichOneof("kind") == "completed"
        recorded = json.loads(done.completed.output.inline)
        order = await routed_branches(rt, original)
        envelopes = {r.exec_id: r.envelope for r in await rt.store.executions(original)}
        chosen = pb.ExecutionEnvelope.FromString(envelopes[order[at]]).task.header.name
        later = {
            pb.ExecutionEnvelope.FromString(envelopes[x]).task.header.name for x in order[at + 1 :]
        }
        before = Counter(Counted.runs)

        new_id = await fork_lifetime(
            rt,
            original,
            order[at],
            result=encode({"node": chosen, "edited": True}) if edit else None,
            rerun_finished_branches=rerun,
        )
        final = await rt.wait(new_id, timeout=20)
        assert final.WhichOneof("kind") == "completed", final
        output = json.loads(final.completed.output.inline)
        ran = Counted.runs - before

        # the join got every branch's result
        assert sorted(output) == sorted(BRANCHES)
        assert output[chosen] == ({"node": chosen, "edited": True} if edit else output[chosen])
        # only the chosen node (unless edited) and, when asked, later branches ran again
        assert ran == Counter(
            {**({} if edit else {chosen: 1}), **dict.fromkeys(later if rerun else (), 1)}
        )
        for branch in set(BRANCHES) - {chosen} - (later if rerun else set()):
            assert output[branch] == recorded[branch]  # the recorded result, not a new run
        assert sorted(await names_of(rt, new_id)) == sorted(["spread", *BRANCHES, "collect"])
        report = await replay_lifetime(rt.store, new_id)
        assert report.ok, report.divergence
