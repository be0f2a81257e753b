"""A coding agent: plan -> act -> observe, with loops, parallel branches and a join.

    tickrail run examples/coding_agent.py --input '{"feature": "rate limiter"}'

Shape (Tasks do work, Plans decide):

    plan -> draft -> refine -> revise -> refine ...      (refine loop until the review passes)
                     refine =PARALLEL=> gen_api, gen_tests
    per branch:  gen_X -> check_X -> test_X -> check_X -> fix_X -> check_X ...   (validate loop)
                 check_X -> ship_X =JOIN=> integrate -> package -> FINAL

Every "model call" here is a DETERMINISTIC STAND-IN (``stand_in_model``): it
returns canned text and records made-up token counts, so the example runs
offline, always takes the same path, and gives guardrails real numbers to count.
"""

from __future__ import annotations

from typing import Any

from tickrail import (
    AgentGraph,
    Next,
    Plan,
    PlanContext,
    Task,
    TaskContext,
    final,
    join,
    normal,
    parallel,
)

REQUIRED_SECTIONS = ["interface", "errors", "tests"]
BRANCHES = ["api", "tests"]


def stand_in_model(ctx: TaskContext | PlanContext, prompt: str, answer: str) -> str:
    """STAND-IN for an LLM call: deterministic, offline; usage ~ 1 token per 4 chars."""
    tokens_in, tokens_out = len(prompt) // 4 + 50, len(answer) // 4 + 20
    ctx.record_usage(
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=(tokens_in * 0.15 + tokens_out * 0.6) / 1_000_000 * 10,
        model="stand-in-coder",
    )
    return answer


class PlanWork(Plan):
    name = "plan"

    async def plan(self, ctx: PlanContext) -> Next:
        feature = (ctx.input or {}).get("feature", "rate limiter")
        return Next({"draft": {"feature": feature, "sections": []}})


class Draft(Task):
    """Act: write a first design."""

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        design = dict(ctx.input, sections=["interface"])
        stand_in_model(ctx, f"Design a {design['feature']}. " * 20, "interface: ... " * 40)
        return design


class Refine(Plan):
    """Observe: review the design; loop through revise until every section is there."""

    async def plan(self, ctx: PlanContext) -> Next:
        design = ctx.input
        missing = [s for s in REQUIRED_SECTIONS if s not in design["sections"]]
        if missing:
            return Next({"revise": dict(design, todo=missing[0])})
        return Next({f"gen_{b}": {"design": design, "artifact": b} for b in BRANCHES})


class Revise(Task):
    """Act: add the next missing section to the design."""

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        design = dict(ctx.input)
        todo = design.pop("todo")
        stand_in_model(ctx, f"Add a {todo} section to: {design}" * 5, f"{todo}: ... " * 60)
        return dict(design, sections=[*design["sections"], todo])


class Generate(Task):
    """Act: generate code for one artifact (first version, deliberately buggy)."""

    def __init__(self, artifact: str) -> None:
        self.name = f"gen_{artifact}"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        artifact = ctx.input["artifact"]
        code = stand_in_model(
            ctx,
            f"Write the {artifact} for {ctx.input['design']}" * 3,
            f"def {artifact}(): ...  # v1\n" * 30,
        )
        return {"artifact": artifact, "version": 1, "code": code}


class Check(Plan):
    """Observe one branch: test new code, fix what fails, ship what passes."""

    def __init__(self, artifact: str) -> None:
        self.name = f"check_{artifact}"
        self.artifact = artifact

    async def plan(self, ctx: PlanContext) -> Next:
        last = ctx.upstream[-1]
        a = self.artifact
        if last.name in (f"gen_{a}", f"fix_{a}"):
            return Next({f"test_{a}": last.value})
        report = last.value
        if report["passed"]:
            return Next({f"ship_{a}": report["candidate"]})
        return Next({f"fix_{a}": report})


class RunTests(Task):
    """Act: run the test suite (stand-in: version 1 always fails one test)."""

    def __init__(self, artifact: str) -> None:
        self.name = f"test_{artifact}"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        candidate = ctx.input
        passed = candidate["version"] >= 2
        ctx.record_metric("tests_failed", 0 if passed else 1)
        return {
            "passed": passed,
            "candidate": candidate,
            "failures": [] if passed else [f"test_{candidate['artifact']}_edge_case"],
        }


class Fix(Task):
    """Act: patch the code from the failing tests' report."""

    def __init__(self, artifact: str) -> None:
        self.name = f"fix_{artifact}"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        candidate = dict(ctx.input["candidate"])
        stand_in_model(
            ctx,
            f"Fix {ctx.input['failures']} in {candidate['code']}",
            candidate["code"].replace("v1", "v2"),
        )
        candidate.update(
            version=candidate["version"] + 1, code=candidate["code"].replace("v1", "v2")
        )
        return candidate


class Ship(Task):
    """Act: publish the validated artifact for integration."""

    def __init__(self, artifact: str) -> None:
        self.name = f"ship_{artifact}"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        return {
            "artifact": ctx.input["artifact"],
            "version": ctx.input["version"],
            "lines": ctx.input["code"].count("\n"),
        }


class Integrate(Plan):
    """Runs once both branches shipped (JOIN)."""

    async def plan(self, ctx: PlanContext) -> Next:
        return Next({"package": {u.value["artifact"]: u.value for u in ctx.upstream}})


class Package(Task):
    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        stand_in_model(
            ctx, f"Write release notes for {sorted(ctx.input)}", "Release notes ... " * 20
        )
        return {"release": "0.1.0", "artifacts": ctx.input}


def _branch_nodes(a: str) -> list[Task | Plan]:
    return [Generate(a), Check(a), RunTests(a), Fix(a), Ship(a)]


def _branch_edges(a: str) -> list[Any]:
    return [
        normal(f"gen_{a}", f"check_{a}"),
        normal(f"check_{a}", f"test_{a}"),
        normal(f"test_{a}", f"check_{a}"),
        normal(f"check_{a}", f"fix_{a}"),
        normal(f"fix_{a}", f"check_{a}"),
        normal(f"check_{a}", f"ship_{a}"),
    ]


graph = AgentGraph(
    "coding_agent",
    version="1.0.0",
    entry="plan",
    nodes=[
        PlanWork(),
        Draft(),
        Refine(),
        Revise(),
        *[n for a in BRANCHES for n in _branch_nodes(a)],
        Integrate(),
        Package(),
    ],
    edges=[
        normal("plan", "draft"),
        normal("draft", "refine"),
        normal("refine", "revise"),
        normal("revise", "refine"),
        parallel("refine", [f"gen_{a}" for a in BRANCHES]),
        *[e for a in BRANCHES for e in _branch_edges(a)],
        join([f"ship_{a}" for a in BRANCHES], "integrate"),
        normal("integrate", "package"),
        final("package"),
    ],
)

if __name__ == "__main__":
    from tickrail.services.cli.main import main

    raise SystemExit(main(["run", __file__, *__import__("sys").argv[1:]]))
