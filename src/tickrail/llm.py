"""``tickrail.llm``: wrap openai and anthropic clients (see ``tickrail.sdk.llm``)."""

from __future__ import annotations

from tickrail.sdk.llm import (
    Price,
    TokenCount,
    clear_prices,
    cost_usd,
    set_prices,
    wrap,
    wrap_anthropic,
    wrap_openai,
)

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
