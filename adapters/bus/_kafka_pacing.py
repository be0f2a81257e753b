"""How long a consumer's fetch waits at the broker: by how many keys (lifetimes)
it serves, and longer once it has been idle for a while.

A broker that does not answer a waiting fetch as data arrives (Tansu) makes
the fetch wait the latency of a hop, and every fetch that comes back empty a
request and a response through aiokafka's Python protocol code (~1 ms of CPU on
a loaded 2-core machine). So:

* serving one lifetime, the wait is ``fetch_max_wait_ms`` (5): its planner loop
  is three hops, each waiting out a fetch;
* serving many lifetimes at once, the wait grows towards ``fetch_batch_wait_ms``
  (reached at ``fetch_batch_keys`` keys seen within a second): each fetch then
  brings more messages, and the empty ones that cost CPU per step without
  moving anything are fewer. On the loaded machine (load average ~10), 50
  lifetimes with a 15 ms wait ran with a quarter less CPU per execution and a
  third of the planner-loop p99 of 5 ms, because the CPU not spent polling was
  what the steps queued for. The key count, unlike a batch size, does not grow
  with the wait, so this cannot feed on itself;
* after ``fetch_idle_after_ms`` (a minute) without a message the wait becomes
  ``fetch_idle_wait_ms``: an idle consumer costs ~3 % of a core instead of ~13 %,
  and only the first message after the quiet period waits longer (on each hop:
  a loop after a Task that ran longer than that pays it three times).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ._kafka_settings import KafkaSettings
from .base import Message

# Keys are counted per window of this many seconds: a lifetime that went quiet
# stops counting within one.
_WINDOW_S = 1.0


class FetchPacing:
    """Sets one aiokafka consumer's fetch wait after each poll."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.busy_ms = settings.fetch_max_wait_ms
        self.batch_ms = max(settings.fetch_batch_wait_ms, self.busy_ms)
        self.batch_keys = max(2, settings.fetch_batch_keys)  # 1 would divide by zero
        self.idle_ms = settings.fetch_idle_wait_ms
        self.idle_after = settings.fetch_idle_after_ms / 1000
        self.enabled = self.idle_ms > self.busy_ms or self.batch_ms > self.busy_ms
        self.wait_ms = self.busy_ms
        self._last_message = time.monotonic()
        self._keys: set[str] = set()
        self._recent_keys = 0  # distinct keys in the last whole window
        self._window_ends = self._last_message + _WINDOW_S

    def after_poll(self, raw: Any, delivered: Sequence[Message]) -> None:
        """Called after each poll with the messages it delivered."""
        if not self.enabled:
            return
        now = time.monotonic()
        if delivered:
            self._last_message = now
            self._keys.update(m.key for m in delivered)
        if now >= self._window_ends:
            self._recent_keys, self._window_ends = len(self._keys), now + _WINDOW_S
            self._keys = set()
        wanted = self._wanted(now, bool(delivered))
        if wanted != self.wait_ms:
            self._set(raw, wanted)

    def _wanted(self, now: float, delivered: bool) -> int:
        quiet = not delivered and now - self._last_message >= self.idle_after
        if quiet and self.idle_ms > self.busy_ms:
            return self.idle_ms
        keys = max(self._recent_keys, len(self._keys))
        share = min(1.0, max(0, keys - 1) / (self.batch_keys - 1))
        return round(self.busy_ms + (self.batch_ms - self.busy_ms) * share)

    def _set(self, raw: Any, wait_ms: int) -> None:
        # aiokafka reads this attribute as it builds each fetch request; the
        # fetch already waiting at the broker keeps the wait it was sent with.
        fetcher = getattr(raw, "_fetcher", None)
        if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
            self.enabled = False  # another aiokafka: keep its fixed wait
            return
        fetcher._fetch_max_wait_ms = wait_ms
        self.wait_ms = wait_ms
