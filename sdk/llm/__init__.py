"""Real model clients for Tasks: usage, cost and streamed tokens recorded for you.

::

    from openai import OpenAI
    from tickrail import llm

    client = llm.wrap(OpenAI())

    class Answer(Task):
        async def run(self, ctx):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[...])
            return reply.choices[0].message.content

Each call made inside a Task adds its tokens, model and cost (from the
``genai-prices`` table, or your ``Price`` overrides) to the execution, so
guardrails and ``tickrail usage`` count it; streamed calls forward their text
to ``ctx.emit``. Install with ``pip install 'tickrail[openai]'`` or
``'tickrail[anthropic]'``.
"""

from __future__ import annotations

from .prices import Price, TokenCount, clear_prices, cost_usd, set_prices
from .wrap import wrap, wrap_anthropic, wrap_openai

__all__ = [
    "Price",
    "TokenCount",
    "clear_prices",
    "cost_usd",
    "set_prices",
    "wrap",
    "wrap_anthropic",
    "wrap_openai",
]
