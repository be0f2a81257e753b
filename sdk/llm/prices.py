"""What a model call cost, from the maintained ``genai-prices`` table.

Prices are never kept here: ``genai-prices`` (pydantic's package, updated as
providers change prices) knows the public models, dated snapshots included.
Private or negotiated prices override it per model name, either for one
wrapped client (``wrap(client, prices=...)``) or process-wide
(``set_prices``). A model that is in neither costs 0 and is logged once, so
an unknown model never fails a Task.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

log = logging.getLogger("tickrail.llm")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Cached input tokens cost ``cache_read`` when given."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_read", "cache_write"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"Price.{name} must be >= 0 USD per million tokens, got {value}")


@dataclass(frozen=True, slots=True)
class TokenCount:
    """Tokens of one call. ``input`` counts every input token, cached ones included."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0


_overrides: dict[str, Price] = {}
_unknown_logged: set[tuple[str, str]] = set()
_lock = threading.Lock()


def set_prices(prices: Mapping[str, Price]) -> None:
    """Process-wide private prices by model name (they win over the public table)."""
    with _lock:
        _overrides.update(_checked(prices))


def clear_prices() -> None:
    """Forget every price given to ``set_prices``."""
    with _lock:
        _overrides.clear()


def _checked(prices: Mapping[str, Price]) -> dict[str, Price]:
    for model, price in prices.items():
        if not isinstance(price, Price):
            raise TypeError(f"the price of {model!r} must be a tickrail.llm.Price, got {price!r}")
    return dict(prices)


def _override(model: str, prices: Mapping[str, Price]) -> Price | None:
    with _lock:
        merged = {**_overrides, **prices}
    if model in merged:
        return merged[model]
    # A response names the dated snapshot ("gpt-4o-2024-08-06") of the model
    # the price was given for ("gpt-4o"): the longest given name it starts with.
    for name in sorted(merged, key=len, reverse=True):
        if model.startswith(name + "-"):
            return merged[name]
    return None


def cost_usd(
    model: str,
    provider: str,
    tokens: TokenCount,
    prices: Mapping[str, Price] | None = None,
) -> float:
    """The call's cost in USD: the override for ``model`` if any, else the table's."""
    override = _override(model, prices or {})
    if override is not None:
        return _priced(override, tokens)
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # the extra is not installed: say so once, cost unknown
        _log_unknown(model, provider, "genai-prices is not installed (pip install tickrail[llm])")
        return 0.0
    usage = Usage(
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
    )
    try:
        calculation = calc_price(usage, model, provider_id=provider)
    except LookupError:
        _log_unknown(model, provider, "it is not in the genai-prices table")
        return 0.0
    return float(calculation.total_price)


def _priced(price: Price, tokens: TokenCount) -> float:
    cache_read = price.input if price.cache_read is None else price.cache_read
    cache_write = price.input if price.cache_write is None else price.cache_write
    uncached = max(tokens.input - tokens.cache_read - tokens.cache_write, 0)
    total = (
        Decimal(str(price.input)) * uncached
        + Decimal(str(cache_read)) * tokens.cache_read
        + Decimal(str(cache_write)) * tokens.cache_write
        + Decimal(str(price.output)) * tokens.output
    )
    return float(total / Decimal(1_000_000))


def _log_unknown(model: str, provider: str, why: str) -> None:
    with _lock:
        if (model, provider) in _unknown_logged:
            return
        _unknown_logged.add((model, provider))
    log.warning(
        "no price for %s model %r: %s; its calls are recorded with cost 0 "
        "(give one with tickrail.llm.set_prices or wrap(client, prices=...))",
        provider,
        model,
        why,
    )
