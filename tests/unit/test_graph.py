"""Graph and node definitions are checked up front, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickrail.sdk import (
    AgentGraph,
    DefinitionError,
    GraphValidationError,
    Plan,
    Task,
    final,
    join,
    load_graph,
    normal,
    parallel,
)
from tickrail.sdk.pb import envelope_pb2 as pb

from .graphs import Gather, Start, Work

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def problems_of(**kwargs: object) -> list[str]:
    defaults: dict[str, object] = dict(version="1.0.0", entry="start")
    with pytest.raises(GraphValidationError) as info:
        AgentGraph("g", **{**defaults, **kwargs})  # type: ignore[arg-type]
    return info.value.problems


def test_a_valid_graph_builds_its_routing_spec() -> None:
    graph = AgentGraph(
        "ok",
        version="1.2.3",
        entry="start",
        nodes=[Start(), Work("a"), Work("b"), Gather()],
        edges=[parallel("start", ["a", "b"]), join(["a", "b"], "gather"), final("gather")],
    )
    assert graph.spec.entry == "start"
    assert {(e.source, e.target, e.kind) for e in graph.spec.edges} == {
        ("start", "a", pb.EDGE_KIND_PARALLEL),
        ("start", "b", pb.EDGE_KIND_PARALLEL),
        ("a", "gather", pb.EDGE_KIND_JOIN),
        ("b", "gather", pb.EDGE_KIND_JOIN),
        ("gather", "", pb.EDGE_KIND_FINAL),
    }


def test_every_wiring_mistake_is_reported_together() -> None:
    problems = problems_of(
        version="one",
        max_fanout=0,
        nodes=[Start(), Work("a"), Work("b"), Work("c"), Gather(), Work("lonely")],
        edges=[
            normal("start", "a"),
            normal("a", "b"),  # Task -> Task: allowed
            normal("a", "gather"),  # ... but now 'a' has two onward edges
            join(["b"], "c"),  # JOIN between two Tasks
            normal("start", "ghost"),  # unknown node
            normal("c", "gather"),
            final("gather"),
        ],
    )
    text = "\n".join(problems)
    assert "not a semantic version" in text
    assert "max_fanout must be an integer from 1" in text
    assert "Task 'a' has 2 outgoing edges ('b', 'gather')" in text
    assert "hands its result to exactly one next node" in text
    assert "JOIN edge 'b' -> 'c' between two Tasks" in text
    assert "unknown node 'ghost'" in text
    assert "node 'lonely' is unreachable" in text
    assert "Task 'lonely' has no outgoing edge" in text
    assert "fed by" not in text  # several Plans may lead to one Task


def test_plan_to_plan_and_missing_final_are_refused() -> None:
    class Other(Plan):
        async def plan(self, ctx: object) -> str:
            return "a"

    problems = problems_of(
        nodes=[Start(), Other(), Work("a")],
        edges=[normal("start", "other"), normal("other", "a"), normal("a", "other")],
    )
    text = "\n".join(problems)
    assert "joins two Plans" in text
    assert "no FINAL edge" in text


def test_a_loop_with_no_way_out_is_named() -> None:
    class Spin(Plan):
        async def plan(self, ctx: object) -> str:
            return "c"

    problems = problems_of(
        nodes=[Start(), Work("a"), Work("b"), Gather(), Spin(), Work("c")],
        edges=[
            normal("start", "a"),
            normal("start", "b"),
            normal("a", "gather"),
            final("gather"),
            normal("b", "spin"),
            normal("spin", "c"),
            normal("c", "spin"),
        ],
    )
    assert sorted(p for p in problems if "no path to a FINAL" in p) == [
        "node 'b' has no path to a FINAL edge",
        "node 'c' has no path to a FINAL edge",
        "node 'spin' has no path to a FINAL edge",
    ]


def test_three_mistakes_in_a_yaml_graph_are_all_named_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "name: broken\n"
        "version: 1.0.0\n"
        "entry: greet\n"
        "nodes:\n"
        "  - name: greet\n"
        "    impl: sdk.builtins:Echo\n"
        "    colour: blue\n"  # 1: unknown field (line 7)
        "  - name: missing\n"
        "    impl: no.such.module:Task\n"  # 2: cannot import (line 9)
        "edges:\n"
        "  - {from: greet, to: nowhere}\n"  # 3: unknown node (line 11)
    )
    with pytest.raises(GraphValidationError) as info:
        load_graph(str(path))
    message = str(info.value)
    assert f"{path}:7: unknown node field 'colour'" in message
    assert f"{path}:9: cannot import node implementation 'no.such.module:Task'" in message
    assert "unknown node 'nowhere'" in message and f"{path}:11" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nnodes: [\n  - a\n")
    with pytest.raises(GraphValidationError, match=r"(?s)bad\.yaml:3: .*invalid YAML"):
        load_graph(str(path))


def test_hello_yaml_loads() -> None:
    graph = load_graph(str(EXAMPLES / "hello.yaml"))
    assert (graph.graph_id, graph.version, graph.entry) == ("hello", "1.0.0", "greet")


def test_task_subclass_problems_are_collected_at_definition() -> None:
    with pytest.raises(DefinitionError) as info:

        class Broken(Task):
            name = "9lives"
            timeout = 0
            retry = 3  # type: ignore[assignment]

            def run(self) -> None:  # type: ignore[override]
                pass

    problems = "\n".join(info.value.problems)
    assert "name '9lives' is invalid" in problems
    assert "run must take exactly (self, ctx)" in problems
    assert "timeout must be a positive number" in problems
    assert "retry must be a Retry" in problems


def test_a_plan_without_plan_method_is_refused() -> None:
    with pytest.raises(DefinitionError, match="must define plan"):

        class Empty(Plan):
            pass


def test_default_names_are_snake_case() -> None:
    class FetchWeather(Task):
        async def run(self, ctx: object) -> None:
            return None

    assert FetchWeather.name == "fetch_weather"
