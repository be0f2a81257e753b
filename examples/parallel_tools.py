"""Three independent tools run in parallel, then a Plan joins them (the Lattice /
LLMCompiler pattern).

    tickrail run examples/parallel_tools.py --input '{"city": "Lisbon", "ticker": "ACME"}'

Each tool stands in for a ~1 s API call (asyncio.sleep plus canned data), so
the lifetime takes about 1 s, not 3. The planner and the final answer stand in
for model calls: they are deterministic and record made-up token usage so
guardrails and ``tickrail lifetimes show`` have something to count.
"""

from __future__ import annotations

import asyncio
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
    normal,
    parallel,
)

TOOL_SECONDS = 1.0
TOOLS = ["web_search", "weather", "stock_quote"]


class Planner(Plan):
    """Decides which tools to call. (Stand-in for a planning model call.)"""

    async def plan(self, ctx: PlanContext) -> Next:
        request = ctx.input or {}
        ctx.record_usage(tokens_in=120, tokens_out=40, cost_usd=0.0006, model="stand-in-planner")
        return Next(
            {
                "web_search": {"query": f"events in {request.get('city', 'Lisbon')} this week"},
                "weather": {"city": request.get("city", "Lisbon")},
                "stock_quote": {"ticker": request.get("ticker", "ACME")},
            }
        )


class WebSearch(Task):
    name = "web_search"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(TOOL_SECONDS)  # stand-in for a search API call
        return {
            "query": ctx.input["query"],
            "hits": ["Jazz at the riverside", "Tile museum late opening"],
        }


class Weather(Task):
    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(TOOL_SECONDS)  # stand-in for a weather API call
        return {"city": ctx.input["city"], "forecast": "sunny", "high_c": 24}


class StockQuote(Task):
    name = "stock_quote"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(TOOL_SECONDS)  # stand-in for a market-data API call
        return {"ticker": ctx.input["ticker"], "price": 101.25, "currency": "USD"}


class Synthesize(Plan):
    """Runs once all three tools have answered (JOIN) and hands them to the writer."""

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        failed = [u.name for u in ctx.upstream if not u.ok]
        if failed:
            return Finish({"error": f"tools failed: {', '.join(failed)}"})
        return Next({"answer": {u.name: u.value for u in ctx.upstream}})


class Answer(Task):
    """Writes the answer. (Stand-in for a model call.)"""

    async def run(self, ctx: TaskContext) -> str:
        facts = ctx.input
        ctx.record_usage(tokens_in=300, tokens_out=80, cost_usd=0.0019, model="stand-in-writer")
        weather, quote = facts["weather"], facts["stock_quote"]
        return (
            f"{weather['city']}: {weather['forecast']}, {weather['high_c']}°C. "
            f"Try: {', '.join(facts['web_search']['hits'])}. "
            f"{quote['ticker']} trades at {quote['price']} {quote['currency']}."
        )


graph = AgentGraph(
    "parallel_tools",
    version="1.0.0",
    entry="planner",
    nodes=[Planner(), WebSearch(), Weather(), StockQuote(), Synthesize(), Answer()],
    edges=[
        parallel("planner", TOOLS),
        join(TOOLS, "synthesize"),
        normal("synthesize", "answer"),
        final("synthesize"),
        final("answer"),
    ],
)

if __name__ == "__main__":
    from tickrail.services.cli.main import main

    raise SystemExit(main(["run", __file__, *__import__("sys").argv[1:]]))
