"""Kafka bus URL options: the fetch and linger settings, and bad values named."""

from __future__ import annotations

import pytest

pytest.importorskip("aiokafka")

from tickrail.adapters import Message
from tickrail.adapters.bus._kafka_pacing import FetchPacing
from tickrail.adapters.bus.kafka import parse_url
from tickrail.sdk.errors import ConfigurationError


def test_defaults_give_short_fetch_waits() -> None:
    s = parse_url("kafka://broker:9092", {})
    assert (s.fetch_max_wait_ms, s.fetch_min_bytes, s.linger_ms) == (5, 1, 0)
    assert (s.fetch_idle_wait_ms, s.fetch_idle_after_ms) == (50, 60_000)
    assert (s.fetch_batch_wait_ms, s.fetch_batch_keys) == (15, 16)


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
        ("fetch_max_wait_ms=-1", "fetch_max_wait_ms, .* and linger_ms must be >= 0"),
        ("fetch_idle_wait_ms=-1", "fetch_idle_wait_ms, fetch_idle_after_ms,"),
        ("fetch_idle_after_ms=-1", "fetch_idle_after_ms, .* must be >= 0"),
        ("fetch_batch_wait_ms=-1", "fetch_batch_wait_ms and linger_ms must be >= 0"),
        ("fetch_batch_keys=1", "fetch_batch_keys >= 2"),
        ("fetch_min_bytes=0", "fetch_min_bytes >= 1"),
        ("linger_ms=-5", "linger_ms must be >= 0"),
        ("fetch_wait=5", "unknown Kafka option 'fetch_wait'"),
    ],
)
def test_bad_values_are_named(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_url(f"kafka://a:1?{query}", {})


class _Fetcher:
    def __init__(self, wait_ms: int) -> None:
        self._fetch_max_wait_ms = wait_ms


class _Raw:
    def __init__(self, wait_ms: int) -> None:
        self._fetcher = _Fetcher(wait_ms)


def _messages(*keys: str) -> list[Message]:
    return [Message("t", key, b"") for key in keys]


def _pacing(query: str) -> tuple[_Raw, FetchPacing]:
    settings = parse_url(f"kafka://a:1?{query}", {})
    return _Raw(settings.fetch_max_wait_ms), FetchPacing(settings)


def test_an_idle_consumer_fetches_with_the_idle_wait_until_a_message_comes() -> None:
    raw, pacing = _pacing("fetch_idle_wait_ms=80&fetch_idle_after_ms=0")
    pacing.after_poll(raw, _messages("one"))
    assert raw._fetcher._fetch_max_wait_ms == 5
    pacing.after_poll(raw, [])  # quiet for fetch_idle_after_ms (0)
    assert raw._fetcher._fetch_max_wait_ms == 80
    pacing.after_poll(raw, _messages("one"))
    assert raw._fetcher._fetch_max_wait_ms == 5


def test_traffic_within_the_quiet_period_keeps_the_short_wait() -> None:
    raw, pacing = _pacing("fetch_idle_after_ms=60000")
    for delivered in (_messages("a"), [], [], _messages("a", "a"), []):
        pacing.after_poll(raw, delivered)
    assert raw._fetcher._fetch_max_wait_ms == 5


def test_the_wait_grows_with_the_keys_served_up_to_the_batch_wait() -> None:
    raw, pacing = _pacing("fetch_batch_wait_ms=25&fetch_batch_keys=5")
    pacing.after_poll(raw, _messages("a", "b", "c"))  # 3 keys: half way from 5 to 25
    assert raw._fetcher._fetch_max_wait_ms == 15
    pacing.after_poll(raw, _messages(*"defghij"))
    assert raw._fetcher._fetch_max_wait_ms == 25


def test_pacing_off_keeps_the_fetch_wait() -> None:
    raw, pacing = _pacing(
        "fetch_max_wait_ms=100&fetch_idle_after_ms=0&fetch_batch_wait_ms=0&fetch_batch_keys=2"
    )
    pacing.after_poll(raw, _messages(*"abcdefgh"))
    pacing.after_poll(raw, [])
    assert raw._fetcher._fetch_max_wait_ms == 100
