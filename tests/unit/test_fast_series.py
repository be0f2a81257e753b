"""The fast series expose exactly what prometheus-client's Histogram and Counter would."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tickrail.services import _fast_series
from tickrail.services._fast_series import FastCounter, FastHistogram

BUCKETS = (0.001, 0.01, 0.1, 1, 10)
AMOUNTS = [0.0, 0.001, 0.0010001, 0.005, 0.01, 0.5, 1, 9.99, 10, 11, 1e9, -1.0]


def samples(text: str, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    registry = CollectorRegistry()
    monkeypatch.setattr(_fast_series, "REGISTRY", registry)
    return registry


def test_a_histogram_has_the_buckets_count_and_sum_of_prometheus_clients(
    registry: CollectorRegistry,
) -> None:
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "h_seconds", "help", ["node"], buckets=BUCKETS, registry=reference_registry
    )
    fast = FastHistogram("h_seconds", "help", ["node"], buckets=BUCKETS)
    for i, amount in enumerate(AMOUNTS):
        node = "a" if i % 3 else "b"
        reference.labels(node=node).observe(amount)
        fast.labels(node=node).observe(amount)
    expected = samples(generate_latest(reference_registry).decode(), "h_seconds")
    got = samples(generate_latest(registry).decode(), "h_seconds")
    assert set(got) == {k for k in expected if not k[0].endswith("_created")}
    for key, value in got.items():
        assert math.isclose(value, expected[key]), key


def test_an_unlabelled_histogram_exists_from_the_start_and_observes(
    registry: CollectorRegistry,
) -> None:
    fast = FastHistogram("loop_seconds", "help", buckets=BUCKETS)
    text = generate_latest(registry).decode()
    assert samples(text, "loop_seconds")[("loop_seconds_count", ())] == 0
    fast.observe(0.05)
    got = samples(generate_latest(registry).decode(), "loop_seconds")
    assert got[("loop_seconds_bucket", (("le", "0.01"),))] == 0
    assert got[("loop_seconds_bucket", (("le", "0.1"),))] == 1
    assert got[("loop_seconds_bucket", (("le", "+Inf"),))] == 1
    assert got[("loop_seconds_sum", ())] == 0.05


def test_a_counter_matches_prometheus_clients_and_refuses_negative_amounts(
    registry: CollectorRegistry,
) -> None:
    reference_registry = CollectorRegistry()
    reference = Counter("c", "help", ["role"], registry=reference_registry)
    fast = FastCounter("c", "help", ["role"])
    for amount, role in ((1, "x"), (3, "y"), (0.5, "x")):
        reference.labels(role=role).inc(amount)
        fast.labels(role=role).inc(amount)
    fast.labels(role="z")  # declared, never counted: still a zero series
    reference.labels(role="z")
    expected = samples(generate_latest(reference_registry).decode(), "c")
    got = samples(generate_latest(registry).decode(), "c")
    assert got == {k: v for k, v in expected.items() if not k[0].endswith("_created")}
    with pytest.raises(ValueError):
        fast.labels(role="x").inc(-1)
    with pytest.raises(ValueError):
        fast.labels(rôle="x")
