"""Process metrics in the Prometheus text format, with no client library.

Each role keeps counters and latency sums; ``render()`` is what a
``/metrics`` endpoint serves.
"""

from __future__ import annotations

import time
from collections import defaultdict

from tickrail.adapters import ReportsLag


class Metrics:
    clock = staticmethod(time.perf_counter)

    def __init__(self, role: str) -> None:
        self.role = role
        self.counters: dict[str, float] = defaultdict(float)
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, float] = {"consumer_lag": 0.0}
        # Series exist from the first scrape, so rate() and alerts see a zero, not a gap.
        for name in ("messages_processed_total", "messages_dead_lettered_total", "errors_total"):
            self.counters[name] = 0.0

    def inc(self, name: str, amount: float = 1.0) -> None:
        self.counters[name] += amount

    def observe(self, name: str, seconds: float) -> None:
        self.latency_sum[name] += seconds
        self.latency_count[name] += 1

    def set(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def report_lag(self, consumer: object) -> None:
        """Record the consumer's lag, where the bus can tell it (ReportsLag)."""
        if isinstance(consumer, ReportsLag):
            self.gauges["consumer_lag"] = float(consumer.lag())

    def observe_batch(self, messages: int, errors: int, started: float) -> None:
        self.inc("messages_processed_total", messages)
        if errors:
            self.inc("messages_dead_lettered_total", errors)
        self.observe("batch_seconds", self.clock() - started)

    def render(self) -> str:
        lines: list[str] = []
        label = f'{{role="{self.role}"}}'
        for name, value in sorted(self.counters.items()):
            lines += [f"# TYPE tickrail_{name} counter", f"tickrail_{name}{label} {value}"]
        for name, value in sorted(self.gauges.items()):
            lines += [f"# TYPE tickrail_{name} gauge", f"tickrail_{name}{label} {value}"]
        for name in sorted(self.latency_sum):
            lines += [
                f"# TYPE tickrail_{name} summary",
                f"tickrail_{name}_sum{label} {self.latency_sum[name]}",
                f"tickrail_{name}_count{label} {self.latency_count[name]}",
            ]
        return "\n".join(lines) + "\n"
