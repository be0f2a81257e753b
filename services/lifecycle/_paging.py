"""ListLifetimes: filters the store cannot apply, and opaque page tokens.

The store lists a tenant's lifetimes newest first (by their first event) and
filters by tenant only here; graph, status and time filters are applied while
walking that order. A page token names the last lifetime returned, so the next
page starts right after it in the same order: lifetimes started meanwhile land
before it and do not shift later pages, and a lifetime whose status changes
never shows up twice. The token also carries a fingerprint of the filters, so
it cannot be replayed against a different query.

Cost: each page re-reads the tenant's list from the newest lifetime down to
the end of the page (a store without a cursor API); fine for thousands of
lifetimes per tenant, a store-side cursor is the fix beyond that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tickrail.adapters import LifetimeSummary
from tickrail.sdk.errors import InvalidArgumentError as InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_FIRST_READ = 200  # rows asked of the store first; multiplied by 4 while more are needed


@dataclass(frozen=True, slots=True)
class LifetimeQuery:
    """What ListLifetimes filters on (times in unix seconds; None: no bound)."""

    tenant_id: str
    graph_id: str = ""
    status: int = 0  # LifetimeStatus; 0 (UNSPECIFIED) matches any
    started_after: float | None = None  # inclusive
    started_before: float | None = None  # exclusive

    def matches(self, summary: LifetimeSummary) -> bool:
        if self.graph_id and summary.graph_id != self.graph_id:
            return False
        if self.status and summary.status != self.status:
            return False
        if self.started_after is not None and summary.started_at < self.started_after:
            return False
        return self.started_before is None or summary.started_at < self.started_before

    def fingerprint(self) -> str:
        text = json.dumps(
            [
                self.tenant_id,
                self.graph_id,
                self.status,
                self.started_after,
                self.started_before,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(query: LifetimeQuery, last_lifetime_id: str) -> str:
    raw = json.dumps({"v": 1, "q": query.fingerprint(), "after": last_lifetime_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(query: LifetimeQuery, token: str) -> str | None:
    """The lifetime id to continue after (None for the first page)."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after = data["after"]
        fingerprint = data["q"]
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise InvalidArgument("page_token", "is not a token this server issued") from exc
    if not isinstance(after, str) or fingerprint != query.fingerprint():
        raise InvalidArgument(
            "page_token", "belongs to a different query (keep the filters of the first page)"
        )
    return after


Lister = Callable[[int], Awaitable[list[LifetimeSummary]]]


async def list_page(
    lister: Lister, query: LifetimeQuery, size: int, token: str
) -> tuple[list[LifetimeSummary], str]:
    """One page of matches, newest first, and the next page's token ("" at the end).

    ``lister(limit)`` returns the tenant's newest ``limit`` lifetimes.
    """
    after = decode_token(query, token)
    limit = _FIRST_READ
    while True:
        rows = await lister(limit)
        found_cursor = after is None
        page: list[LifetimeSummary] = []
        for row in rows:
            if not found_cursor:
                found_cursor = row.lifetime_id == after
                continue
            if query.matches(row):
                page.append(row)
                if len(page) > size:  # one more than a page: there is a next page
                    return page[:size], encode_token(query, page[size - 1].lifetime_id)
        if len(rows) < limit:  # the store has nothing more
            if not found_cursor:
                raise InvalidArgument("page_token", "refers to a lifetime this listing lacks")
            return page, ""
        limit *= 4
