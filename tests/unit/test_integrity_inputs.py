"""Bounded work on every input file: graph, policy and config.

Each class is tried in each kind of file: an alias bomb in a string field, an
unknown tag, runaway nesting, a recursive alias, non-UTF-8 bytes, numbers out
of their field's range, and CEL conditions too costly to evaluate. Every one
is a validation error naming the file and line (exit 2 from the CLI), whose
message is short. The per-test timeout (a hang fails the test) stands in for
"well under a second", measured by hand at ~0.1 s for each bomb.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from tickrail.sdk.errors import ConfigurationError, GraphValidationError
from tickrail.sdk.loading import load_yaml_graph
from tickrail.services.cli.main import main
from tickrail.services.config import load_settings
from tickrail.services.control_plane.guardrails import check_files

pytestmark = pytest.mark.timeout(30)

LEVELS = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]


def bomb(indent: str = "") -> str:
    """Anchors of nine aliases each, nine deep: 9^9 strings once expanded."""
    lines = [f"{indent}x-a: &a " + '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in itertools.pairwise(LEVELS):
        lines.append(f"{indent}x-{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


GOOD_GRAPH = (
    "name: g\nentry: work\nnodes:\n  - name: work\n    impl: tests.unit.graphs:Work\n"
    "    with: {name: work}\nedges:\n  - {from: work, kind: FINAL}\n"
)


def graph_error(path: Path) -> str:
    with pytest.raises(GraphValidationError) as info:
        load_yaml_graph(path)
    return str(info.value)


def config_error(path: Path) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_settings(path, environ={})
    return str(info.value)


def policy_error(path: Path) -> str:
    problems = check_files([path])
    assert problems, "the policy file was accepted"
    return "\n".join(problems)


POLICY_HEAD = "apiVersion: tickrail/v1\nkind: GuardrailPolicy\n"
RULE = (
    "rules:\n  - name: r1\n    scope: tenant\n    condition: {condition}\n"
    "    action: PAUSE_LIFETIME\n    description: {description}\n"
)

# Where an expanded value would be printed: a string field of each file kind.
BOMBS: dict[str, tuple[str, Callable[[Path], str]]] = {
    # A node's options: construction fails and the error used to print them.
    "graph-node-options": (
        "x: 1\n" + GOOD_GRAPH.replace("with: {name: work}", "with: {name: work, bad: *i}"),
        graph_error,
    ),
    "graph-name": ("name: *i\nentry: w\nnodes: []\nedges: []\n", graph_error),
    "graph-edge-target": (
        GOOD_GRAPH.replace("{from: work, kind: FINAL}", "{from: work, to: *i}"),
        graph_error,
    ),
    "config-setting": ("tenant: *i\n", config_error),
    "config-list-setting": ("policies: *i\n", config_error),
    "policy-description": (
        POLICY_HEAD + RULE.format(condition="true", description="*i"),
        policy_error,
    ),
    "policy-condition": (POLICY_HEAD + RULE.format(condition="*i", description="x"), policy_error),
    "policy-match": (
        POLICY_HEAD + RULE.format(condition="true", description="x") + "    match: {nodes: *i}\n",
        policy_error,
    ),
}


def anchors_inline() -> str:
    """The same anchors as one flow list, to sit inside a known setting of a config file."""
    first = '&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    rest = [f"&{n} [" + ",".join([f"*{p}"] * 9) + "]" for p, n in itertools.pairwise(LEVELS)]
    return "[" + ", ".join([first, *rest]) + "]"


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_an_alias_bomb_is_refused_with_its_line_and_a_short_message(
    tmp_path: Path, case: str
) -> None:
    body, load = BOMBS[case]
    path = tmp_path / "file.yaml"
    if load is config_error:  # no extra keys in a config file: anchors inside one setting
        path.write_text(f"graphs: {anchors_inline()}\n" + body)
    else:
        path.write_text(bomb() + body)
    message = load(path)
    assert "refused" in message, message
    assert str(path) in message
    assert message.count("lol") < 10 and len(message) < 4000, message[:500]


TAGS = [
    "!!python/object/apply:os.system ['echo pwned']",
    "!!python/name:os.system",
    "!custom value",
    "!!binary aGVsbG8=",
]


@pytest.mark.parametrize("tag", TAGS)
def test_unknown_tags_are_refused_in_every_kind_of_file(tmp_path: Path, tag: str) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_text(GOOD_GRAPH.replace("entry: work", f"entry: work\nmax_steps: {tag}"))
    assert f"{graph}:3" in graph_error(graph) and "unknown tag" in graph_error(graph)
    config = tmp_path / "c.yaml"
    config.write_text(f"tenant: ok\nhome: {tag}\n")
    assert f"{config}:2" in config_error(config) and "unknown tag" in config_error(config)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY_HEAD + RULE.format(condition="true", description=tag))
    assert "line 8" in policy_error(policy) and "unknown tag" in policy_error(policy)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a: &x [*x]\n", "recursive alias"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
        ("a: " + "{b: " * 200 + "1" + "}" * 200 + "\n", "nested more than"),
        ("a: [" + ", ".join(["&q 1"] + ["*q"] * 150) + "]\n", "more than 100 aliases"),
    ],
)
def test_runaway_structure_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    for load, name in ((graph_error, "g.yaml"), (policy_error, "p.yaml")):
        path = tmp_path / name
        path.write_text(text)
        assert expected in load(path)
    config = tmp_path / "c.yaml"
    config.write_text(text.replace("a:", "tenants:", 1))
    assert expected in config_error(config)


def test_non_utf8_bytes_are_refused_with_their_line(tmp_path: Path) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_bytes(GOOD_GRAPH.replace("name: work", "name: w\xffrk").encode("latin-1"))
    assert f"{graph}:4" in graph_error(graph) and "not UTF-8" in graph_error(graph)
    config = tmp_path / "c.yaml"
    config.write_bytes(b"tenant: ok\ntenant: \xfe\xff\n")
    assert f"{config}:2" in config_error(config)
    policy = tmp_path / "p.yaml"
    policy.write_bytes(POLICY_HEAD.encode() + b"rules:\n  - name: r\xff\n")
    assert "line 4" in policy_error(policy) and "not UTF-8" in policy_error(policy)


@pytest.mark.parametrize(
    "field,value",
    [
        ("max_iterations", "2147483648"),
        ("max_steps", "-1"),
        ("max_iterations", "0"),
        ("max_steps", "1e400"),
        ("max_iterations", "true"),
        ("max_steps", "'10'"),
        ("max_iterations", "99999999999999999999999"),
    ],
)
def test_numbers_out_of_range_in_a_graph_name_their_line(
    tmp_path: Path, field: str, value: str
) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(GOOD_GRAPH.replace("entry: work", f"entry: work\n{field}: {value}"))
    message = graph_error(path)
    assert f"{path}:3" in message and field in message and "2147483647" in message


def test_odd_names_in_a_graph_are_validation_errors(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(GOOD_GRAPH.replace("name: work", "name: 'w/o\\u0000rk'"))
    assert f"{path}:4" in graph_error(path)
    path.write_text(GOOD_GRAPH.replace("name: work", "name: [not, a, name]"))
    assert f"{path}:4" in graph_error(path)


@pytest.mark.parametrize(
    "line,needle",
    [
        ("executor_concurrency: 2147483648", "out of range"),
        ("http_port: 70000", "out of range"),
        ("shutdown_grace_s: .nan", "finite"),
        ("shutdown_grace_s: -1", "finite"),
        ("offload_threshold: 1.5", "whole number"),
        ("tenant: [a, b]", "single value"),
        ("policies: {a: 1}", "list of strings"),
    ],
)
def test_settings_out_of_range_name_file_and_line(tmp_path: Path, line: str, needle: str) -> None:
    path = tmp_path / "tickrail.yaml"
    path.write_text(f"tenant: ok\n{line}\n")
    message = config_error(path)
    assert f"{path}:2" in message and needle in message


def test_the_cli_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(GOOD_GRAPH.replace("entry: work", "entry: work\nmax_iterations: 2147483648"))
    assert main(["run", str(path), "--home", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3" in err and "Traceback" not in err
    bombed = tmp_path / "b.yaml"
    bombed.write_text(bomb() + GOOD_GRAPH.replace("with: {name: work}", "with: {name: *i}"))
    assert main(["run", str(bombed), "--home", str(tmp_path / "h")]) == 2
    assert "refused" in capsys.readouterr().err


NESTED = "[" + ",".join(str(i) for i in range(100)) + "]"


def nested(depth: int, over: str = NESTED) -> str:
    expr = "x0 > 0"
    for d in range(depth):
        expr = f"{over}.all(x{d}, {expr})"
    return expr


@pytest.mark.parametrize(
    "condition",
    [
        nested(4),
        nested(3),
        nested(3, "execution.metrics"),  # activation maps count as 100 entries
        "lifetime.nodes.all(a, lifetime.nodes.all(b, lifetime.nodes.exists(c, "
        "execution.metrics.exists(d, true))))",
        f"{NESTED}.map(x, {NESTED}).all(y, y.all(z, {NESTED}.exists(w, w == z)))",
        "'" + "x" * 9000 + "' == execution.name",  # longer than any condition may be
    ],
)
def test_a_costly_condition_is_refused_at_load_with_the_rule_named(
    tmp_path: Path, condition: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_HEAD + RULE.format(condition=f'"{condition}"', description="x"))
    message = policy_error(path)
    assert "r1" in message and "line 6" in message and "limit" in message, message


@pytest.mark.parametrize(
    "condition",
    [
        nested(2, "[1,2,3]"),
        nested(1),
        "execution.metrics.exists(k, execution.metrics[k] > 5)",
        "lifetime.nodes.exists(n, lifetime.nodes[n].count > 3)",
    ],
)
def test_reasonable_comprehensions_still_load(tmp_path: Path, condition: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_HEAD + RULE.format(condition=f'"{condition}"', description="x"))
    assert check_files([path]) == []


def test_exceeding_the_evaluation_time_bound_is_a_policy_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cel

    from tickrail.services.control_plane.guardrails import _cost
    from tickrail.services.control_plane.guardrails._expressions import (
        ConditionError,
        compile_condition,
    )

    condition = compile_condition("execution.attempt > 0", "execution")
    context = cel.Context(variables={"execution": {"attempt": 1}})
    assert condition.evaluate(context) is True
    monkeypatch.setattr(_cost, "EVALUATION_TIME_LIMIT_S", -1.0)  # every evaluation is "too slow"
    with pytest.raises(ConditionError, match=r"over the .* limit"):
        condition.evaluate(context)


async def test_a_slow_evaluation_pauses_the_lifetime_naming_the_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tickrail.sdk.pb import envelope_pb2 as pb
    from tickrail.services.config import Settings
    from tickrail.services.control_plane.guardrails import _cost
    from tickrail.services.runtime import Runtime

    from .graphs import Work, single_task_graph

    path = tmp_path / "p.yaml"
    path.write_text(POLICY_HEAD + RULE.format(condition="execution.attempt > 100", description="x"))
    graph = single_task_graph(Work("single"))
    settings = Settings(profile="test", home=str(tmp_path / "h"), policies=[str(path)])
    async with Runtime(settings, [graph]) as rt:
        monkeypatch.setattr(_cost, "EVALUATION_TIME_LIMIT_S", -1.0)  # every evaluation "too slow"
        final = await rt.wait(await rt.start_lifetime(graph, None), timeout=20)
    assert final.WhichOneof("kind") == "paused"
    assert "r1" in final.paused.reason and "limit" in final.paused.reason
    assert final.paused.reason.count("could not be evaluated") == 1
    assert isinstance(final, pb.LifetimeEvent)
