"""Histograms and counters that cost a few hundred instructions per observation.

prometheus-client's ``Histogram.observe`` takes two locks and walks the
buckets in Python, and ``Counter.inc`` takes a lock: on the embedded chain that
was a noticeable share of a step, which observes three histograms and counts
several times. These series keep plain per-child numbers instead (a bucket
found with ``bisect``) and hand prometheus-client the same families when the
registry collects, so ``/metrics`` and ``REGISTRY.get_sample_value`` show what
the prometheus-client types would (names, HELP, labels, buckets, ``+Inf``).

They are observed on the event loop's thread only (every role's hot path
runs there); a scrape from another thread reads a snapshot that may be one
observation behind, which Prometheus tolerates as it does between scrapes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import accumulate

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from prometheus_client.utils import floatToGoString

__all__ = ["FastCounter", "FastHistogram"]

INF = float("inf")


class HistogramChild:
    """One label set's buckets (non-cumulative counts; the last is ``+Inf``) and sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # bisect_left: the first bound >= amount, prometheus-client's ``amount <= bound``.
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class _Series(Collector):
    """Children by label values, created once (``labels`` is then a dict lookup)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], HistogramChild | CounterChild] = {}
        REGISTRY.register(self)

    def _key(self, values: dict[str, str]) -> tuple[str, ...]:
        if set(values) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, not {tuple(values)}")
        return tuple(str(values[n]) for n in self.labelnames)


class FastHistogram(_Series):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        self.bounds = bounds if bounds and bounds[-1] == INF else (*bounds, INF)
        super().__init__(name, documentation, labelnames)
        if not self.labelnames:
            self._unlabelled = self.labels()

    def labels(self, **values: str) -> HistogramChild:
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = HistogramChild(self.bounds)
        assert isinstance(child, HistogramChild)
        return child

    def observe(self, amount: float) -> None:
        """For a histogram without labels."""
        self._unlabelled.observe(amount)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [floatToGoString(b) for b in self.bounds]  # type: ignore[no-untyped-call]
        for key, child in list(self._children.items()):
            assert isinstance(child, HistogramChild)
            total, counts = child.sum, list(child.counts)
            buckets = list(zip(les, (float(c) for c in accumulate(counts)), strict=True))
            family.add_metric(list(key), buckets, total)
        yield family


class FastCounter(_Series):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        # prometheus-client's convention: the family is named without ``_total``.
        super().__init__(name.removesuffix("_total"), documentation, labelnames)

    def labels(self, **values: str) -> CounterChild:
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = CounterChild()
        assert isinstance(child, CounterChild)
        return child

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            assert isinstance(child, CounterChild)
            family.add_metric(list(key), child.value)
        yield family
