"""The design brief's "Coding Agent" graph, node for node, as drawn.

    tickrail run examples/seed_coding_agent.py --input '{"app": "todo list"}'
    tickrail lifetimes resume ID --input '"a todo list for my team"'   # and so on

A person describes an app (Human In The Loop), a Plan queries RAG, the RAG
result goes straight into an LLM call (a Task -> Task edge: no Plan in between),
and "Elucidate / Do Execute" either asks the person a clarifying question
(back to Human In The Loop) or starts three code-generation branches. Each
branch generates, plans, validates and loops on failure (observe/refine);
every passing candidate goes to one shared human accept/reject Task that any
branch's Pass/Fail Plan may dispatch. Accepting takes that Task's FINAL edge
(``Finish``) and ends the lifetime; rejecting sends the feedback back to
Elucidate / Do Execute, which regenerates that candidate.

Every "model call" here is a DETERMINISTIC STAND-IN (``stand_in_model``): canned
text and made-up token counts, so the example runs offline, always takes the
same path for the same answers, and guardrails have real numbers to count.
The three candidates are alternative implementations; the first one the
person accepts wins. Candidate 1's first version always fails validation (it
has no tests), so its branch goes round the refine loop once.
"""

from __future__ import annotations

from typing import Any

from tickrail import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Task,
    TaskContext,
    final,
    normal,
    parallel,
)

BRANCHES = [1, 2, 3]
STYLES = {1: "minimal", 2: "layered", 3: "functional"}
KNOWLEDGE = {
    "todo": ["todo apps need add, list, complete", "store items with a due date"],
    "sqlite": ["use one table per entity", "wrap writes in a transaction"],
}


def stand_in_model(ctx: TaskContext, prompt: str, answer: Any) -> Any:
    """STAND-IN for an LLM call: deterministic, offline; usage ~ 1 token per 4 chars."""
    tokens_in, tokens_out = len(prompt) // 4 + 40, len(str(answer)) // 4 + 10
    ctx.record_usage(
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=(tokens_in * 0.15 + tokens_out * 0.6) / 1_000_000,
        model="stand-in-coder",
    )
    return answer


class HumanInTheLoop(Task):
    """Task: Human In The Loop. Asks for the app, or answers a clarifying question."""

    name = "human_in_the_loop"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        given = ctx.input or {}
        question = given.get("question") or f"Describe the {given.get('app', 'app')} you want"
        answer = ctx.ask_human(question)
        notes = [*given.get("notes", []), str(answer)]
        return {"app": given.get("app", "app"), "notes": notes}


class CallRag(Plan):
    """Plan: Call RAG. Turns what the person said into a RAG query."""

    name = "call_rag"

    async def plan(self, ctx: PlanContext) -> Next:
        request = ctx.input
        return Next({"rag_lookup": {"request": request, "query": " ".join(request["notes"])}})


class RagLookup(Task):
    """Task: RAG Lookup (a stand-in index of canned snippets)."""

    name = "rag_lookup"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        query = ctx.input["query"].lower()
        docs = [doc for key, found in KNOWLEDGE.items() if key in query for doc in found]
        return {"request": ctx.input["request"], "docs": docs}


class SubmitToLlm(Task):
    """Task: Submit to LLM. Fed by RAG Lookup directly (Task -> Task edge)."""

    name = "submit_to_llm"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        request, docs = ctx.input["request"], ctx.input["docs"]
        said = " ".join(request["notes"]).lower()
        questions = [] if "sqlite" in said or "memory" in said else ["Where should data be stored?"]
        spec = {"app": request["app"], "requirements": request["notes"], "context": docs}
        return stand_in_model(
            ctx,
            f"Summarise {request} using {docs}",
            {"spec": spec, "open_questions": questions, "notes": request["notes"]},
        )


class ElucidateOrExecute(Plan):
    """Plan: Elucidate / Do Execute. Ask the person, or generate code (three branches).

    Reached from Submit to LLM (a summary) and from the human accept/reject Task
    (a rejection, with the person's feedback): then it regenerates that candidate.
    """

    name = "elucidate_or_execute"

    async def plan(self, ctx: PlanContext) -> Next:
        last = ctx.upstream[0]
        if last.name == "human_accept_reject":  # rejected: regenerate that candidate
            rejected = last.value
            branch = rejected["candidate"]["branch"]
            return Next(
                {
                    f"code_gen_{branch}": {
                        "spec": rejected["candidate"]["spec"],
                        "branch": branch,
                        "version": rejected["candidate"]["version"],
                        "feedback": rejected["feedback"],
                    }
                }
            )
        summary = last.value
        if summary["open_questions"]:
            return Next(
                {
                    "human_in_the_loop": {
                        "app": summary["spec"]["app"],
                        "question": summary["open_questions"][0],
                        "notes": summary["notes"],
                    }
                }
            )
        return Next(
            {
                f"code_gen_{b}": {"spec": summary["spec"], "branch": b, "feedback": ""}
                for b in BRANCHES
            }
        )


class CodeGen(Task):
    """Task: Tool Call k. Generates candidate k (entered from two Plans)."""

    def __init__(self, branch: int) -> None:
        self.name = f"code_gen_{branch}"
        self.branch = branch

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        given = ctx.input
        version = given.get("version", 0) + 1
        style = STYLES[self.branch]
        # Candidate 1 forgets its tests the first time (the refine loop fixes it).
        with_tests = not (style == "minimal" and version == 1)
        code = stand_in_model(
            ctx,
            f"Write a {style} {given['spec']['app']} ({given['feedback']}); "
            f"fix {given.get('issues')}",
            f"# {style} {given['spec']['app']} v{version}\n"
            + ("def test_add(): ...\n" if with_tests else ""),
        )
        return {
            "branch": self.branch,
            "spec": given["spec"],
            "version": version,
            "code": code,
            "feedback": given["feedback"],
        }


class LlmPlan(Plan):
    """Plan: LLM (after generation): decide how to validate the candidate."""

    def __init__(self, branch: int) -> None:
        self.name = f"llm_plan_{branch}"
        self.branch = branch

    async def plan(self, ctx: PlanContext) -> Next:
        return Next({f"validate_{self.branch}": {"candidate": ctx.input, "checks": ["tests"]}})


class Validate(Task):
    """Task: LLM Validate (stand-in: a candidate passes when its code has tests)."""

    def __init__(self, branch: int) -> None:
        self.name = f"validate_{branch}"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        candidate = ctx.input["candidate"]
        issues = [] if "def test_" in candidate["code"] else ["no tests"]
        ctx.record_metric("validation_issues", len(issues))
        return stand_in_model(
            ctx,
            f"Review {candidate['code']}",
            {"passed": not issues, "issues": issues, "candidate": candidate},
        )


class PassFail(Plan):
    """Plan: Pass/Fail. pass -> the human; fail -> observe/refine (generate again)."""

    def __init__(self, branch: int) -> None:
        self.name = f"pass_fail_{branch}"
        self.branch = branch

    async def plan(self, ctx: PlanContext) -> Next:
        report = ctx.input
        if report["passed"]:
            return Next({"human_accept_reject": report["candidate"]})
        candidate = report["candidate"]
        return Next(
            {
                f"code_gen_{self.branch}": {
                    "spec": candidate["spec"],
                    "branch": self.branch,
                    "version": candidate["version"],
                    "feedback": candidate["feedback"],
                    "issues": report["issues"],
                }
            }
        )


class HumanAcceptReject(Task):
    """Task: Human In The Loop (accept/reject), shared by every branch.

    accept -> End (``Finish``: the FINAL edge); reject -> Elucidate / Do Execute.
    """

    name = "human_accept_reject"

    async def run(self, ctx: TaskContext) -> Any:
        candidate = ctx.input
        answer = str(
            ctx.ask_human(
                f"candidate {candidate['branch']} v{candidate['version']}: accept or reject "
                f"(with feedback)?\n{candidate['code']}"
            )
        )
        if answer.lower().startswith("accept"):
            return Finish({"accepted": candidate})
        return {"candidate": candidate, "feedback": answer}


def _branch_nodes(b: int) -> list[Task | Plan]:
    return [CodeGen(b), LlmPlan(b), Validate(b), PassFail(b)]


def _branch_edges(b: int) -> list[Any]:
    return [
        normal(f"code_gen_{b}", f"llm_plan_{b}"),  # Tool b Results
        normal(f"llm_plan_{b}", f"validate_{b}"),  # plan results
        normal(f"validate_{b}", f"pass_fail_{b}"),  # Validated Results
        normal(f"pass_fail_{b}", "human_accept_reject"),  # pass
        normal(f"pass_fail_{b}", f"code_gen_{b}"),  # observe/refine
    ]


graph = AgentGraph(
    "seed_coding_agent",
    version="1.0.0",
    entry="human_in_the_loop",  # Start --> Task: Human In The Loop
    nodes=[
        HumanInTheLoop(),
        CallRag(),
        RagLookup(),
        SubmitToLlm(),
        ElucidateOrExecute(),
        *[n for b in BRANCHES for n in _branch_nodes(b)],
        HumanAcceptReject(),
    ],
    edges=[
        normal("human_in_the_loop", "call_rag"),  # human input
        normal("call_rag", "rag_lookup"),  # RAG query
        normal("rag_lookup", "submit_to_llm"),  # RAG Output (Task -> Task)
        normal("submit_to_llm", "elucidate_or_execute"),  # LLM Results
        normal("elucidate_or_execute", "human_in_the_loop"),  # clarification
        parallel("elucidate_or_execute", [f"code_gen_{b}" for b in BRANCHES]),  # LLM Results
        *[e for b in BRANCHES for e in _branch_edges(b)],
        final("human_accept_reject"),  # accept --> End
        normal("human_accept_reject", "elucidate_or_execute"),  # reject
    ],
)

if __name__ == "__main__":
    from tickrail.services.cli.main import main

    raise SystemExit(main(["run", __file__, *__import__("sys").argv[1:]]))
