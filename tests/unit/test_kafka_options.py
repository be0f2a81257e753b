"""Kafka bus URL options: the fetch and linger settings, and bad values named."""

from __future__ import annotations

import pytest

pytest.importorskip("aiokafka")

from tickrail.adapters.bus.kafka import parse_url
from tickrail.sdk.errors import ConfigurationError


def test_defaults_give_short_fetch_waits() -> None:
    s = parse_url("kafka://broker:9092", {})
    assert (s.fetch_max_wait_ms, s.fetch_min_bytes, s.linger_ms) == (5, 1, 0)


def test_query_and_keyword_options() -> None:
    s = parse_url("kafka://a:1,b:2?fetch_max_wait_ms=50&fetch_min_bytes=1024&linger_ms=2", {})
    assert (s.bootstrap, s.fetch_max_wait_ms, s.fetch_min_bytes, s.linger_ms) == (
        ["a:1", "b:2"],
        50,
        1024,
        2,
    )
    assert (
        parse_url("kafka://a:1?fetch_max_wait_ms=50", {"fetch_max_wait_ms": 7}).fetch_max_wait_ms
        == 7
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("fetch_max_wait_ms=soon", "fetch_max_wait_ms='soon' is not a number"),
        ("fetch_max_wait_ms=-1", "fetch_max_wait_ms and linger_ms must be >= 0"),
        ("fetch_min_bytes=0", "fetch_min_bytes >= 1"),
        ("linger_ms=-5", "linger_ms must be >= 0"),
        ("fetch_wait=5", "unknown Kafka option 'fetch_wait'"),
    ],
)
def test_bad_values_are_named(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_url(f"kafka://a:1?{query}", {})
