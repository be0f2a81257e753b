"""Code whose graph differs from a lifetime's recorded structure is refused before it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tickrail.sdk import AgentGraph, Finish, Plan, PlanContext, Task, TaskContext, final, normal
from tickrail.sdk.drift import graph_differences
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.cli.main import main
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

RAN: list[str] = []


class Begin(Plan):
    async def plan(self, ctx: PlanContext) -> str:
        RAN.append("begin")
        return "work"


class Work(Task):
    async def run(self, ctx: TaskContext) -> str:
        RAN.append("work")
        return "done"


class Check(Task):
    async def run(self, ctx: TaskContext) -> Finish:
        return Finish("checked")


def graph(*, extra: bool = False, max_steps: int = 100) -> AgentGraph:
    return AgentGraph(
        "drifty",
        version="1.0.0",
        entry="begin",
        nodes=[Begin(), Work(), *([Check()] if extra else [])],
        edges=[
            normal("begin", "work"),
            *([normal("work", "check"), final("check")] if extra else [final("work")]),
        ],
        max_steps=max_steps,
    )


def test_the_differences_are_named() -> None:
    changes = graph_differences(graph().spec, graph(extra=True, max_steps=50).spec)
    assert changes == [
        "max_steps is 50 in the code but 100 in the record",
        "node 'check' (Task) is new in the code",
        "edge work -[FINAL]-> END is missing in the code",
        "edge check -[FINAL]-> END is new in the code",
        "edge work -[NORMAL]-> check is new in the code",
    ]
    assert graph_differences(graph().spec, graph().spec) == []


async def test_an_executor_refuses_drifted_code_before_running_any_node(tmp_path: Path) -> None:
    RAN.clear()
    recorded, changed = graph(), graph(extra=True)
    async with Runtime(Settings(profile="test", home=str(tmp_path)), [changed]) as rt:
        lifetime_id = await rt.start_lifetime(recorded)  # started with the old structure
        done = await rt.wait(lifetime_id, timeout=30)
        records = await rt.store.executions(lifetime_id)
    assert RAN == []  # no user code ran
    assert done.WhichOneof("kind") == "failed"
    (envelope,) = [pb.ExecutionEnvelope.FromString(r.envelope) for r in records]
    assert envelope.plan.result.error_type == "GraphDriftError"
    reason = done.failed.reason
    assert "the code's graph drifty@1.0.0 differs from the structure this lifetime was" in reason
    assert "node 'check' (Task) is new in the code" in reason
    assert "edge work -[NORMAL]-> check is new in the code" in reason


ASKING = """
from tickrail import AgentGraph, Task, final, normal, Plan


class Begin(Plan):
    async def plan(self, ctx):
        return "ask"


class Ask(Task):
    async def run(self, ctx):
        return ctx.ask_human("ok?")


class Extra(Task):
    async def run(self, ctx):
        return 1


graph = AgentGraph(
    "asking", version="1.0.0", entry="begin",
    nodes=[Begin(), Ask(){nodes}],
    edges=[normal("begin", "ask"){edges}],
)
"""


def test_resume_fork_and_rerun_plans_refuse_a_changed_graph_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "asking.py"
    source.write_text(ASKING.replace("{nodes}", "").replace("{edges}", ', final("ask")'))
    assert main(["run", str(source), "--json", "--quiet"]) == 3
    lifetime_id = json.loads(capsys.readouterr().out)["lifetime_id"]

    # the same graph id and version, another structure
    source.write_text(
        ASKING.replace("{nodes}", ", Extra()").replace(
            "{edges}", ', normal("ask", "extra"), final("extra")'
        )
    )
    assert main(["lifetimes", "resume", lifetime_id, "--input", '"yes"']) == 2
    err = capsys.readouterr().err
    assert "differs from the structure this lifetime was recorded with" in err
    assert "node 'extra' (Task) is new in the code" in err
    assert "edge ask -[FINAL]-> END is missing in the code" in err
    assert main(["fork", lifetime_id, "--from", f"{lifetime_id}.1.1"]) == 2
    assert "node 'extra' (Task) is new in the code" in capsys.readouterr().err
    assert main(["replay", lifetime_id, "--rerun-plans"]) == 2
    assert "node 'extra' (Task) is new in the code" in capsys.readouterr().err
