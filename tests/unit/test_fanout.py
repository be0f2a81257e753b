"""Run-time fan-out (Next.map, Send), DAG dependencies, and blocking Tasks, end to end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tickrail.sdk import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Send,
    Task,
    TaskContext,
    final,
    join,
    normal,
    parallel,
)
from tickrail.sdk._payload import read_value
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.control_plane.replay import replay_lifetime
from tickrail.services.runtime import Runtime

DELAY = 0.3


class Fan(Plan):
    """Maps ``tool`` over ``ctx.input["items"]``, plus ``extra`` once; finishes after the join."""

    name = "fan"

    def __init__(self, tool: str = "tool", extra: str = "") -> None:
        self.tool, self.extra = tool, extra

    async def plan(self, ctx: PlanContext) -> Next:
        choice = Next.map(self.tool, ctx.input["items"])
        return choice + Next(self.extra) if self.extra else choice


class Collect(Plan):
    async def plan(self, ctx: PlanContext) -> Finish:
        return Finish([u.value for u in ctx.upstream])


class AsyncTool(Task):
    name = "tool"

    async def run(self, ctx: TaskContext) -> Any:
        await asyncio.sleep(DELAY)
        ctx.record_usage(tokens_in=1, tokens_out=1)
        return {"item": ctx.input, "branch": ctx.branch}


class BlockingTool(Task):
    name = "tool"

    def run(self, ctx: TaskContext) -> Any:
        time.sleep(DELAY)  # blocking I/O stand-in
        return {"item": ctx.input, "branch": ctx.branch}


class Weather(Task):
    async def run(self, ctx: TaskContext) -> str:
        return "sunny"


def map_graph(tool: Task, *, extra: Task | None = None, max_fanout: int = 256) -> AgentGraph:
    tasks = [tool.name] + ([extra.name] if extra else [])
    return AgentGraph(
        "mapped",
        version="1.0.0",
        entry="fan",
        nodes=[
            Fan(tool.name, extra.name if extra else ""),
            tool,
            *([extra] if extra else []),
            Collect(),
        ],
        edges=[parallel("fan", tasks), join(tasks, "collect"), final("collect")],
        max_fanout=max_fanout,
    )


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(profile="test", home=str(tmp_path / "state"), **kw)


async def run(
    tmp_path: Path, graph: AgentGraph, value: Any, **kw: Any
) -> tuple[pb.LifetimeEvent, list[pb.ExecutionEnvelope], Runtime]:
    rt = Runtime(settings(tmp_path, **kw), [graph])
    async with rt:
        lifetime_id = await rt.start_lifetime(graph, value)
        final_event = await rt.wait(lifetime_id, timeout=60)
        records = await rt.store.executions(lifetime_id)
        report = await replay_lifetime(rt.store, lifetime_id)
        assert report.ok, report.divergence
    return final_event, [pb.ExecutionEnvelope.FromString(r.envelope) for r in records], rt


def header(envelope: pb.ExecutionEnvelope) -> pb.ExecutionHeader:
    return getattr(envelope, envelope.WhichOneof("execution") or "task").header


def all_started_before_any_finished(headers: list[pb.ExecutionHeader]) -> bool:
    last_start = max(h.started_at.ToNanoseconds() for h in headers)
    first_finish = min(h.finished_at.ToNanoseconds() for h in headers)
    return last_start < first_finish


@pytest.mark.parametrize("tool", [AsyncTool(), BlockingTool()], ids=["async", "def"])
async def test_a_plan_maps_one_task_over_50_inputs_all_in_flight_at_once(
    tool: Task, tmp_path: Path
) -> None:
    items = [f"q{i}" for i in range(50)]
    done, envelopes, _ = await run(tmp_path, map_graph(tool), {"items": items})
    assert done.WhichOneof("kind") == "completed", done
    output = await read_value(done.completed.output, None)
    # the join gets every result in dispatch order, each run knew its own index
    assert output == [{"item": q, "branch": i} for i, q in enumerate(items)]
    runs = [header(e) for e in envelopes if header(e).name == "tool"]
    assert len(runs) == 50
    assert sorted(h.branch[-1].index for h in runs) == list(range(50))
    assert {h.branch[-1].width for h in runs} == {50}
    assert {h.iteration for h in runs} == {1}  # one round of the Task, 50 branches
    assert {(h.from_node, h.from_exec_id) for h in runs} == {("fan", header(envelopes[0]).exec_id)}
    # by the record: every run started before the first one finished
    assert all_started_before_any_finished(runs)


async def test_mapped_runs_mix_with_other_tasks_and_join_in_dispatch_order(
    tmp_path: Path,
) -> None:
    done, _, _ = await run(
        tmp_path, map_graph(AsyncTool(), extra=Weather()), {"items": ["a", "b", "c"]}
    )
    output = await read_value(done.completed.output, None)
    assert output == [
        {"item": "a", "branch": 0},
        {"item": "b", "branch": 1},
        {"item": "c", "branch": 2},
        "sunny",
    ]


async def test_a_fan_out_wider_than_max_fanout_is_refused_when_the_plan_returns(
    tmp_path: Path,
) -> None:
    done, envelopes, _ = await run(
        tmp_path, map_graph(AsyncTool(), max_fanout=4), {"items": list(range(5))}
    )
    assert done.WhichOneof("kind") == "failed"
    reason = done.failed.reason
    assert "Plan 'fan' chose Next([tool, tool, tool, tool, tool])" in reason
    assert "5 Task runs, over the graph's max_fanout of 4" in reason
    plan = envelopes[0].plan
    assert plan.header.status == pb.EXECUTION_STATUS_FAILED
    assert plan.result.error_type == "tickrail.sdk.errors.RoutingError"
    assert [header(e).name for e in envelopes] == ["fan"]  # nothing ran, nothing retried


def test_naming_one_task_twice_without_inputs_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"names 'tool' 2 times without inputs.*Next\.map"):
        Next(["tool", "tool"])
    assert Next([Send("tool", 1), Send("tool", 2)]).tasks == ("tool", "tool")


@pytest.mark.parametrize(
    ("sends", "message"),
    [
        (
            [Send("t", 1, id="a", after=["b"]), Send("t", 2, id="b", after=["a"])],
            "cycle: a -> b -> a",
        ),
        ([Send("t", 1, id="a"), Send("t", 2, id="a")], "'a' repeat"),
        ([Send("t", 1, after=["ghost"])], "waits for 'ghost'"),
    ],
)
def test_bad_dependencies_are_refused_at_construction(sends: list[Send], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Next(sends)


class Pick(Plan):
    name = "pick"

    async def plan(self, ctx: PlanContext) -> Next:
        return Next.map("a", [1, 2])


async def test_mapping_over_a_normal_edge_is_refused_with_the_rule(tmp_path: Path) -> None:
    a = Weather()
    a.name = "a"  # type: ignore[misc]
    graph = AgentGraph(
        "serial",
        version="1.0.0",
        entry="pick",
        nodes=[Pick(), a],
        edges=[normal("pick", "a"), final("a")],
    )
    done, _, _ = await run(tmp_path, graph, None)
    assert "Plan 'pick' chose Next([a, a]): 'a' is reached by a NORMAL edge" in done.failed.reason
    assert "declare parallel('pick', [...])" in done.failed.reason


# ---- DAG dependencies (LLMCompiler) ------------------------------------------


class Dag(Plan):
    name = "dag"

    async def plan(self, ctx: PlanContext) -> Next:
        return Next(
            [
                Send("step", {"id": "slow", "s": 0.6}, id="slow"),
                Send("step", {"id": "fast", "s": 0.1}, id="fast"),
                Send("step", {"id": "after_fast", "s": 0.1}, id="after_fast", after=["fast"]),
                Send(
                    "step",
                    {"id": "after_both", "s": 0.1},
                    id="after_both",
                    after=["slow", "after_fast"],
                ),
            ]
        )


class StepTool(Task):
    name = "step"

    async def run(self, ctx: TaskContext) -> Any:
        await asyncio.sleep(ctx.input["s"])
        return {"id": ctx.input["id"], "saw": sorted(ctx.deps)}


def dag_graph() -> AgentGraph:
    return AgentGraph(
        "dag",
        version="1.0.0",
        entry="dag",
        nodes=[Dag(), StepTool(), Collect()],
        edges=[parallel("dag", ["step"]), join(["step"], "collect"), final("collect")],
    )


async def test_a_dependent_call_starts_when_its_own_dependencies_finish(tmp_path: Path) -> None:
    done, envelopes, _ = await run(tmp_path, dag_graph(), None)
    assert done.WhichOneof("kind") == "completed"
    output = await read_value(done.completed.output, None)
    assert output == [  # dispatch (declaration) order, not finishing order
        {"id": "slow", "saw": []},
        {"id": "fast", "saw": []},
        {"id": "after_fast", "saw": ["fast"]},
        {"id": "after_both", "saw": ["after_fast", "slow"]},
    ]
    by_id: dict[str, pb.ExecutionHeader] = {}
    for e in envelopes:
        if header(e).name == "step":
            value = await read_value(e.task.result.output, None)
            by_id[value["id"]] = header(e)

    def start(i: str) -> int:
        return by_id[i].started_at.ToNanoseconds()

    def end(i: str) -> int:
        return by_id[i].finished_at.ToNanoseconds()

    # eager: after_fast ran while slow was still running, not after the whole level
    assert end("fast") <= start("after_fast") < end("slow")
    assert start("after_both") >= max(end("slow"), end("after_fast"))
    assert [by_id[i].branch[-1].index for i in ("slow", "fast", "after_fast", "after_both")] == [
        0,
        1,
        2,
        3,
    ]


# ---- guardrails see the width ------------------------------------------------


async def test_a_guardrail_rule_can_cap_the_fan_out_width(tmp_path: Path) -> None:
    policy = tmp_path / "fanout.yaml"
    policy.write_text(
        "apiVersion: tickrail/v1\nkind: GuardrailPolicy\nrules:\n"
        "  - name: fanout-width\n    scope: execution\n"
        '    condition: execution.kind == "plan" && execution.fanout > 3\n'
        "    action: ABORT_LIFETIME\n    message: too wide\n"
    )
    done, envelopes, _ = await run(
        tmp_path, map_graph(AsyncTool()), {"items": list(range(4))}, policies=[str(policy)]
    )
    assert done.WhichOneof("kind") == "aborted" and "fanout-width" in done.aborted.reason
    assert [header(e).name for e in envelopes] == ["fan"]


# ---- CPU-bound Tasks in a process pool ---------------------------------------


class Crunch(Task):
    name = "tool"
    pool = "process"

    def run(self, ctx: TaskContext) -> Any:
        import os

        ctx.record_usage(tokens_in=3, model="cpu")
        return {"item": sum(i * i for i in range(ctx.input * 1000)), "pid": os.getpid()}


async def test_a_cpu_bound_task_can_run_in_a_process_pool(tmp_path: Path) -> None:
    import os

    done, envelopes, _ = await run(
        tmp_path, map_graph(Crunch()), {"items": [1, 2]}, process_pool_size=2
    )
    assert done.WhichOneof("kind") == "completed", done
    output = await read_value(done.completed.output, None)
    assert [o["item"] for o in output] == [sum(i * i for i in range(n * 1000)) for n in (1, 2)]
    assert all(o["pid"] != os.getpid() for o in output)
    runs = [e.task for e in envelopes if e.WhichOneof("execution") == "task"]
    assert {(t.telemetry.tokens_in, t.telemetry.model) for t in runs} == {(3, "cpu")}


def test_pool_must_be_thread_or_process() -> None:
    from tickrail.sdk import DefinitionError

    with pytest.raises(DefinitionError, match="pool must be 'thread' or 'process'"):

        class Bad(Task):
            pool = "gpu"

            def run(self, ctx: TaskContext) -> None:
                return None


# ---- iterations count per branch ---------------------------------------------


class Judge(Plan):
    """Per branch: loops ``again`` while the item says so, then hands in ``done``."""

    name = "judge"

    async def plan(self, ctx: PlanContext) -> Next:
        value = ctx.input
        if value.get("loops", 0) > 0:
            return Next({"again": dict(value, loops=value["loops"] - 1)})
        return Next({"done": value})


class Again(Task):
    name = "again"

    async def run(self, ctx: TaskContext) -> Any:
        return ctx.input


class Done(Task):
    name = "done"

    async def run(self, ctx: TaskContext) -> Any:
        return {"item": ctx.input["item"], "judged": ctx.iteration}


class Spread(Plan):
    name = "spread"

    async def plan(self, ctx: PlanContext) -> Next:
        return Next.map(
            "again", [{"item": i, "loops": ctx.input["loops"]} for i in range(ctx.input["n"])]
        )


def branch_graph(max_iterations: int = 100) -> AgentGraph:
    return AgentGraph(
        "branches",
        version="1.0.0",
        entry="spread",
        nodes=[Spread(), Again(), Judge(), Done(), Collect()],
        edges=[
            parallel("spread", ["again"]),
            normal("again", "judge"),
            normal("judge", "again"),
            normal("judge", "done"),
            join(["done"], "collect"),
            final("collect"),
        ],
        max_iterations=max_iterations,
        max_fanout=300,
    )


async def test_nodes_after_a_wide_map_count_their_iterations_per_branch(tmp_path: Path) -> None:
    # 200 branches, each judged once: far over max_iterations=100 in all, 1 per branch
    done, envelopes, _ = await run(tmp_path, branch_graph(), {"n": 200, "loops": 0})
    assert done.WhichOneof("kind") == "completed", done
    output = await read_value(done.completed.output, None)
    assert output == [{"item": i, "judged": 1} for i in range(200)]
    judged = [header(e).iteration for e in envelopes if header(e).name == "judge"]
    assert len(judged) == 200 and set(judged) == {1}


async def test_a_loop_inside_one_branch_still_hits_max_iterations(tmp_path: Path) -> None:
    done, _, _ = await run(tmp_path, branch_graph(max_iterations=3), {"n": 2, "loops": 5})
    assert done.WhichOneof("kind") == "aborted"
    assert "past the graph's max_iterations cap of 3" in done.aborted.reason


class TwoRounds(Plan):
    """Joins a mapped round; maps once more, then finishes with both rounds' iterations."""

    name = "rounds"

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        if ctx.iteration == 1:
            return Next.map("tool", [u.value["item"] for u in ctx.upstream])
        return Finish([u.value for u in ctx.upstream])


class Counted(Task):
    name = "tool"

    async def run(self, ctx: TaskContext) -> Any:
        return {"item": ctx.input, "iteration": ctx.iteration}


async def test_after_a_join_the_next_round_of_a_mapped_task_is_its_next_iteration(
    tmp_path: Path,
) -> None:
    graph = AgentGraph(
        "rounds",
        version="1.0.0",
        entry="fan",
        nodes=[Fan(), Counted(), TwoRounds()],
        edges=[
            parallel("fan", ["tool"]),
            parallel("rounds", ["tool"]),
            join(["tool"], "rounds"),
            final("rounds"),
        ],
    )
    done, _, _ = await run(tmp_path, graph, {"items": ["a", "b"]})
    assert await read_value(done.completed.output, None) == [
        {"item": "a", "iteration": 2},
        {"item": "b", "iteration": 2},
    ]


async def test_a_dependency_rejected_by_a_guardrail_fails_the_lifetime_naming_its_dependents(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "reject.yaml"
    policy.write_text(
        "apiVersion: tickrail/v1\nkind: GuardrailPolicy\nrules:\n"
        "  - name: no-fast\n    scope: execution\n"
        '    condition: execution.kind == "task" && execution.branch_index == 1\n'
        "    action: REJECT_EXECUTION\n"
    )
    done, _, _ = await run(tmp_path, dag_graph(), None, policies=[str(policy)])
    assert done.WhichOneof("kind") == "failed"
    reason = done.failed.reason
    assert "sends 'after_fast', 'after_both' wait for runs that will not finish" in reason
