"""How long a consumer's fetch waits at the broker: short while traffic flows,
longer once the consumer has been idle for a while.

A broker that does not answer a waiting fetch as data arrives (Tansu) makes
the fetch wait the latency of a hop, so it must stay a few milliseconds while
messages come. But an idle consumer then sends a fetch every few
milliseconds, each a request and a response through aiokafka's Python
protocol code: ~13 % of a core per consumer at 5 ms on a loaded 2-core machine,
for nothing. After ``fetch_idle_after_ms`` without a message the wait grows to
``fetch_idle_wait_ms``; the first message back ends it. Only the first message
after a quiet period pays the longer wait; a planner loop, whose hops follow
each other within milliseconds, never sees it.
"""

from __future__ import annotations

import time
from typing import Any

from ._kafka_settings import KafkaSettings


class FetchPacing:
    """Switches one aiokafka consumer's fetch wait between busy and idle."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.busy_ms = settings.fetch_max_wait_ms
        self.idle_ms = settings.fetch_idle_wait_ms
        self.idle_after = settings.fetch_idle_after_ms / 1000
        self.enabled = self.idle_ms > self.busy_ms
        self.idle = False
        self._last_message = time.monotonic()

    def after_poll(self, raw: Any, delivered: bool) -> None:
        """Called after each poll with whether it delivered anything."""
        if not self.enabled:
            return
        if delivered:
            self._last_message = time.monotonic()
            if self.idle:
                self._set(raw, self.busy_ms, idle=False)
        elif not self.idle and time.monotonic() - self._last_message >= self.idle_after:
            self._set(raw, self.idle_ms, idle=True)

    def _set(self, raw: Any, wait_ms: int, *, idle: bool) -> None:
        # aiokafka reads this attribute as it builds each fetch request; the
        # fetch already waiting at the broker keeps the wait it was sent with.
        fetcher = getattr(raw, "_fetcher", None)
        if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
            self.enabled = False  # another aiokafka: keep its fixed wait
            return
        fetcher._fetch_max_wait_ms = wait_ms
        self.idle = idle
