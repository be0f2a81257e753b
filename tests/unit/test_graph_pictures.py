"""Graph pictures: ``tickrail graph`` and ``AgentGraph.to_mermaid()`` / ``to_dot()``.

Every diagram is checked twice: by a strict grammar of exactly what we emit
(always), and by mermaid's own parser from the npm registry (node + jsdom,
when node and npm are here; required with TICKRAIL_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tickrail import AgentGraph, Finish, Next, Plan, Task, final, join, load_graph, normal, parallel
from tickrail.services.cli.main import main

from .mermaid import Mermaid, parser

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").iterdir() if p.suffix in (".py", ".yaml"))

_ID = r"(?:n\d+|__start__|__end__)"
_LABEL = r'"[^"\n]*"'
_LINE = re.compile(
    rf"^    (?:{_ID}(?:\[{_LABEL}\]|\{{\{{{_LABEL}\}}\}}|\(\[{_LABEL}\]\))"
    rf"|{_ID} (?:-->|-\.->\|parallel\||==>\|join\|) {_ID}"
    r"|classDef plan [a-z#0-9:,]+"
    rf"|class {_ID}(?:,{_ID})* plan)$"
)


def strict_check(text: str) -> None:
    lines = text.rstrip("\n").split("\n")
    assert re.fullmatch(r"flowchart (TD|TB|BT|LR|RL)", lines[0]), lines[0]
    declared: set[str] = set()
    for line in lines[1:]:
        assert _LINE.match(line), f"not in the emitted grammar: {line!r}"
        head = line.split()[0]
        if " --> " not in line and "|" not in line and not line.lstrip().startswith("class"):
            declared.add(re.match(_ID, head.strip()).group(0))  # type: ignore[union-attr]
    for line in lines[1:]:
        if "->" in line:
            source, target = line.split()[0], line.split()[-1]
            assert {source, target} <= declared, line


@pytest.fixture(scope="module")
def mermaid() -> Mermaid:
    found = parser()
    if isinstance(found, str):
        if os.environ.get("TICKRAIL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"mermaid's parser is required: {found}")
        pytest.skip(found)
    return found


class Work(Task):
    async def run(self, ctx):  # type: ignore[no-untyped-def]
        return 1


def keyword_graph() -> AgentGraph:
    """Node names that are Mermaid keywords and DOT-unsafe, fan-out, join and a loop."""

    def task(name: str) -> Task:
        return type(name.title().replace("-", ""), (Work,), {"name": name})()

    class Start(Plan):
        name = "graph"

        async def plan(self, ctx):  # type: ignore[no-untyped-def]
            return Next(["end", "subgraph-1"])

    class Gather(Plan):
        name = "style"

        async def plan(self, ctx):  # type: ignore[no-untyped-def]
            return Finish(None)

    return AgentGraph(
        "odd-names",
        version="1.0.0",
        entry="graph",
        nodes=[Start(), task("end"), task("subgraph-1"), Gather(), task("click")],
        edges=[
            parallel("graph", ["end", "subgraph-1"]),
            join(["end", "subgraph-1"], "style"),
            normal("style", "click"),
            final("click"),
        ],
    )


@pytest.mark.parametrize("target", EXAMPLES, ids=lambda p: Path(p).name)
def test_every_example_draws_a_diagram_mermaid_accepts(
    target: str, mermaid: Mermaid, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", target, "--format", "mermaid"]) == 0
    text = capsys.readouterr().out
    strict_check(text)
    assert mermaid.parse(text) is None
    graph = load_graph(target)
    assert text == graph.to_mermaid()
    for name in graph.nodes:
        assert f'"{name}"' in text


def test_keyword_names_and_every_edge_kind_parse(mermaid: Mermaid) -> None:
    graph = keyword_graph()
    for direction in ("TD", "LR"):
        text = graph.to_mermaid(direction)
        strict_check(text)
        assert mermaid.parse(text) is None, text
    assert "-.->|parallel|" in text and "==>|join|" in text and "--> __end__" in text


def test_the_parser_really_refuses_broken_diagrams(mermaid: Mermaid) -> None:
    broken = keyword_graph().to_mermaid().replace('["end"]', '["end"')
    assert mermaid.parse(broken) is not None
    with pytest.raises(AssertionError):
        strict_check(broken)


def test_coding_agent_diagram_shows_the_loops_fan_out_and_join() -> None:
    text = load_graph(str(ROOT / "examples" / "coding_agent.py")).to_mermaid()
    ids = {m[1]: m[0] for m in re.findall(r"    (n\d+)[\[{]+\"([^\"]+)\"", text)}
    assert f"{ids['revise']} --> {ids['refine']}" in text  # the loop back
    assert f"{ids['refine']} -.->|parallel| {ids['gen_api']}" in text
    assert f"{ids['ship_api']} ==>|join| {ids['integrate']}" in text
    assert f"{ids['package']} --> __end__" in text


def test_dot_and_json_formats(capsys: pytest.CaptureFixture[str]) -> None:
    target = str(ROOT / "examples" / "parallel_tools.py")
    assert main(["graph", target, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    graph = load_graph(target)
    assert shown["graph_id"] == graph.graph_id and shown["entry"] == graph.entry
    assert {n["name"] for n in shown["nodes"]} == set(graph.nodes)
    assert len(shown["edges"]) == len(graph.edges)
    assert main(["graph", target, "--format", "dot"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith('digraph "') and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == len(graph.edges) + 1  # plus the start arrow
    odd = keyword_graph().to_dot()
    assert '"subgraph-1" [shape=box];' in odd and '"graph" [shape=hexagon];' in odd


def test_a_missing_graph_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "no/such/graph.py"]) == 2
    assert "no/such/graph.py does not exist" in capsys.readouterr().err


def test_every_diagram_in_the_readme_parses(mermaid: Mermaid) -> None:
    from .test_readme import DIAGRAMS

    assert DIAGRAMS
    for start, block in DIAGRAMS:
        assert mermaid.parse("\n".join(block) + "\n") is None, f"README.md:{start}"
