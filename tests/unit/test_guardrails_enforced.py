"""Guardrail policies enforced by the control plane, end to end on the embedded runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tickrail.sdk import AgentGraph, load_graph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.cli.main import main
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

from .graphs import fan_out_graph

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def policy(tmp_path: Path, *rules: str, name: str = "policy.yaml") -> str:
    path = tmp_path / name
    path.write_text("apiVersion: tickrail/v1\nkind: GuardrailPolicy\nrules:\n" + "".join(rules))
    return str(path)


def rule(name: str, scope: str, condition: str, action: str, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    scope: {scope}\n    condition: {condition}\n"
        f"    action: {action}\n    message: {name} fired\n{extra}"
    )


async def run(rt: Runtime, graph: AgentGraph, tenant: str = "default") -> pb.LifetimeEvent:
    return await rt.wait(await rt.start_lifetime(graph, tenant=tenant), timeout=20)


def settings(tmp_path: Path, policies: list[str]) -> Settings:
    return Settings(profile="embedded", home=str(tmp_path / "home"), policies=policies)


async def guard_events(rt: Runtime, lifetime_id: str) -> list[pb.GuardrailDecision]:
    events = [pb.LifetimeEvent.FromString(r.body) for r in await rt.store.events(lifetime_id)]
    return [e.guardrail for e in events if e.WhichOneof("kind") == "guardrail"]


async def test_token_budget_aborts_at_the_first_execution_that_crosses_it(tmp_path: Path) -> None:
    budget = rule("token-budget", "lifetime", "lifetime.sum.tokens_used > 1000", "ABORT_LIFETIME")
    graph = load_graph(str(EXAMPLES / "coding_agent.py"))
    async with Runtime(settings(tmp_path, [policy(tmp_path, budget)]), [graph]) as rt:
        final = await run(rt, graph)
        records = await rt.store.executions(final.lifetime_id)
        (verdict,) = await guard_events(rt, final.lifetime_id)
    assert final.WhichOneof("kind") == "aborted"
    running, crossing = 0, None
    for record in records:  # recorded order is evaluation order
        envelope = pb.ExecutionEnvelope.FromString(record.envelope)
        ex = getattr(envelope, envelope.WhichOneof("execution") or "task")
        running += ex.telemetry.tokens_in + ex.telemetry.tokens_out
        if running > 1000 and crossing is None:
            crossing = (ex.header.exec_id, running)
    assert crossing is not None
    assert (verdict.exec_id, verdict.observed["lifetime.sum.tokens_used"]) == crossing
    assert verdict.rule == "token-budget" and verdict.action == "ABORT_LIFETIME"
    assert verdict.policy_version and final.aborted.exec_id == crossing[0]


async def test_a_tenant_budget_spans_lifetimes_of_that_tenant_only(tmp_path: Path) -> None:
    # Each fan_out lifetime records 2 x 15 tokens.
    budget = rule("tenant-budget", "tenant", "tenant.sum.tokens_used > 40", "ABORT_LIFETIME")
    graph = fan_out_graph()
    async with Runtime(settings(tmp_path, [policy(tmp_path, budget)]), [graph]) as rt:
        first = await run(rt, graph, tenant="acme")
        other = await run(rt, graph, tenant="globex")
        second = await run(rt, graph, tenant="acme")
    assert first.WhichOneof("kind") == "completed"
    assert other.WhichOneof("kind") == "completed"
    assert second.WhichOneof("kind") == "aborted"
    assert "tenant-budget" in second.aborted.reason


async def test_a_budget_crossed_by_parallel_branches_aborts_once(tmp_path: Path) -> None:
    budget = rule("branches", "lifetime", "lifetime.sum.tokens_used > 20", "ABORT_LIFETIME")
    graph = fan_out_graph()
    async with Runtime(settings(tmp_path, [policy(tmp_path, budget)]), [graph]) as rt:
        final = await run(rt, graph)
        verdicts = await guard_events(rt, final.lifetime_id)
    assert final.WhichOneof("kind") == "aborted"
    assert [v.observed["lifetime.sum.tokens_used"] for v in verdicts] == [30]


async def test_reject_records_the_execution_but_routes_nothing(tmp_path: Path) -> None:
    reject = rule("no-b", "execution", 'execution.name == "b"', "REJECT_EXECUTION")
    graph = fan_out_graph()
    async with Runtime(settings(tmp_path, [policy(tmp_path, reject)]), [graph]) as rt:
        final = await run(rt, graph)
        names = [r.name for r in await rt.store.executions(final.lifetime_id)]
    assert "b" in names and "gather" not in names
    assert final.WhichOneof("kind") == "failed"
    assert "waiting at: 'gather'" in final.failed.reason


async def test_pause_then_resume_finishes_with_the_same_result(tmp_path: Path) -> None:
    hold = rule("hold-a", "execution", 'execution.name == "a"', "PAUSE_LIFETIME")
    graph = fan_out_graph()
    async with Runtime(settings(tmp_path / "plain", []), [graph]) as rt:
        unpaused = await run(rt, graph)
    async with Runtime(settings(tmp_path, [policy(tmp_path, hold)]), [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph)
        paused = await rt.wait(lifetime_id, timeout=20)
        assert paused.WhichOneof("kind") == "paused" and "hold-a" in paused.paused.reason
        rt.rearm(lifetime_id)
        await rt.send(
            pb.LifetimeCommand(
                command_id="r1",
                lifetime_id=lifetime_id,
                tenant_id="default",
                resume=pb.LifetimeResumed(reason="checked"),
            )
        )
        resumed = await rt.wait(lifetime_id, timeout=20)
        while resumed.WhichOneof("kind") == "paused" and not resumed.paused.exec_id:
            rt.rearm(lifetime_id)
            resumed = await rt.wait(lifetime_id, timeout=20)
    assert resumed.WhichOneof("kind") == "completed"
    assert resumed.completed.output == unpaused.completed.output


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_cli_pause_and_resume_in_separate_processes_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    hold = rule(
        "review-integration", "execution", 'execution.name == "integrate"', "PAUSE_LIFETIME"
    )
    agent = str(EXAMPLES / "coding_agent.py")
    code, plain = cli_json(capsys, "run", agent, "--json", "--quiet", "--home", "plain")
    assert code == 0
    code, paused = cli_json(
        capsys, "run", agent, "--json", "--quiet", "--policy", policy(tmp_path, hold)
    )
    assert code == 3 and paused["status"] == "PAUSED"
    code, resumed = cli_json(
        capsys, "lifetimes", "resume", paused["lifetime_id"], "--json", "--quiet"
    )
    assert code == 0 and resumed["status"] == "COMPLETED"
    assert resumed["output"] == plain["output"]
    assert resumed["executions"] == plain["executions"]


def test_policy_test_lists_what_a_stricter_policy_would_stop_without_changing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, done = cli_json(capsys, "run", str(EXAMPLES / "coding_agent.py"), "--json", "--quiet")
    assert code == 0
    _, before = cli_json(capsys, "lifetimes", "show", done["lifetime_id"], "--json")
    stricter = policy(
        tmp_path,
        rule("tight", "lifetime", "lifetime.sum.tokens_used > 1500", "ABORT_LIFETIME"),
        rule("no-fixes", "execution", 'execution.name == "fix_api"', "REJECT_EXECUTION"),
        name="stricter.yaml",
    )
    code, found = cli_json(
        capsys, "policy", "test", stricter, "--lifetime", done["lifetime_id"], "--json"
    )
    assert code == 0
    assert [f["rule"] for f in found][-1] == "tight"
    assert found[-1]["action"] == "ABORT_LIFETIME"
    assert found[-1]["observed"]["lifetime.sum.tokens_used"] > 1500
    _, after = cli_json(capsys, "lifetimes", "show", done["lifetime_id"], "--json")
    assert after == before


def test_policy_check_names_line_and_rule_of_a_bad_expression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "apiVersion: tickrail/v1\n"
        "kind: GuardrailPolicy\n"
        "rules:\n"
        "  - name: fine\n"
        "    scope: execution\n"
        "    condition: execution.iteration > 5\n"
        "    action: ABORT_LIFETIME\n"
        "    message: ok\n"
        "  - name: budget\n"
        "    scope: lifetime\n"
        "    action: ABORT_LIFETIME\n"
        "    condition: lifetime.sum.tokens_used >> 10\n"  # line 12
        "    message: broken\n"
    )
    assert main(["policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 12" in err and "budget" in err
    assert main(["policy", "check", str(tmp_path / "missing.yaml")]) == 1
    good = policy(tmp_path, rule("ok", "execution", "execution.attempt > 3", "REJECT_EXECUTION"))
    assert main(["policy", "check", good]) == 0
    # a run with a broken policy file is refused before anything starts
    graph = str(EXAMPLES / "hello.yaml")
    assert main(["run", graph, "--policy", str(path), "--home", str(tmp_path / "h")]) == 2
    assert "line 12" in capsys.readouterr().err


def test_a_budget_still_counts_what_was_spent_before_a_resume_in_a_new_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    rules = policy(
        tmp_path,
        rule("review-integration", "execution", 'execution.name == "integrate"', "PAUSE_LIFETIME"),
        rule("budget", "lifetime", "lifetime.sum.tokens_used > 2500", "ABORT_LIFETIME"),
    )
    agent = str(EXAMPLES / "coding_agent.py")
    code, paused = cli_json(capsys, "run", agent, "--json", "--quiet", "--policy", rules)
    assert code == 3 and paused["tokens"] < 2500
    # the resume runs in a fresh runtime whose in-memory KV starts empty
    code, resumed = cli_json(
        capsys, "lifetimes", "resume", paused["lifetime_id"], "--json", "--quiet", "--policy", rules
    )
    assert code == 1 and resumed["status"] == "ABORTED"
    assert "budget" in resumed["reason"]


async def test_a_tenant_budget_spans_separate_embedded_runs(tmp_path: Path) -> None:
    # Each fan_out lifetime records 30 tokens; every Runtime starts a fresh in-memory KV.
    budget = rule("tenant-budget", "tenant", "tenant.sum.tokens_used > 40", "ABORT_LIFETIME")
    graph = fan_out_graph()
    s = settings(tmp_path, [policy(tmp_path, budget)])
    async with Runtime(s, [graph]) as rt:
        first = await run(rt, graph, tenant="acme")
    async with Runtime(s, [graph]) as rt:  # a second `tickrail run`
        second = await run(rt, graph, tenant="acme")
        other = await run(rt, graph, tenant="globex")
    assert first.WhichOneof("kind") == "completed"
    assert second.WhichOneof("kind") == "aborted" and "tenant-budget" in second.aborted.reason
    assert other.WhichOneof("kind") == "completed"
