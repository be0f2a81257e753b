"""Two people review a change in parallel; the lifetime waits for both.

    tickrail run examples/human_review.py --input '{"change": "raise rate limit to 500/s"}'
    tickrail lifetimes resume ID --exec EXEC_ID --input '"approve"'   # once per reviewer

Each review Task calls ``ctx.ask_human``: its branch parks (the lifetime shows
PAUSED, with the question), the other branch keeps going, and answering
re-runs that Task with the answer. The verdict Plan joins both branches.
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
    join,
    parallel,
)

REVIEWS = ["legal_review", "security_review"]


class Propose(Plan):
    async def plan(self, ctx: PlanContext) -> Next:
        change = (ctx.input or {}).get("change", "raise rate limit to 500/s")
        return Next({review: {"change": change} for review in REVIEWS})


class Review(Task):
    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        answer = ctx.ask_human(f"{self.name.replace('_', ' ')}: approve {ctx.input['change']!r}?")
        return {"reviewer": self.name, "approved": str(answer).lower().startswith("approve")}


class Verdict(Plan):
    async def plan(self, ctx: PlanContext) -> Finish:
        votes = {u.value["reviewer"]: u.value["approved"] for u in ctx.upstream}
        return Finish({"approved": all(votes.values()), "votes": votes})


graph = AgentGraph(
    "human_review",
    version="1.0.0",
    entry="propose",
    nodes=[Propose(), *(Review(r) for r in REVIEWS), Verdict()],
    edges=[parallel("propose", REVIEWS), join(REVIEWS, "verdict"), final("verdict")],
)

if __name__ == "__main__":
    from tickrail.services.cli.main import main

    raise SystemExit(main(["run", __file__, *__import__("sys").argv[1:]]))
