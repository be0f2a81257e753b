"""Settings of the Kafka bus, read from its URL (``kafka://host:port?option=value``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import ConfigurationError

# Record batch and request framing on top of the largest message value.
FRAMING = 64 * 1024


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap: list[str]
    partitions: int = 6
    replication: int = 1
    max_message_bytes: int = 8 * 1024 * 1024
    # Tansu never completes a join below 6000 ms; a join takes half of it.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500
    join_timeout: float = 60.0
    # A broker that accepts connections and never answers must not hang a start.
    connect_timeout: float = 30.0
    # aiokafka retries a commit for ever while the broker answers "unknown
    # topic" (a broker that lost its data); past this the member rejoins.
    commit_timeout: float = 10.0
    # How often clients refresh metadata: a topic recreated after a broker lost
    # its data is noticed this soon (aiokafka's default is 5 minutes).
    metadata_max_age_ms: int = 5000
    client_id: str = "tickrail"
    linger_ms: int = 0
    compression_type: str | None = None
    # How long a fetch may wait at the broker for fetch_min_bytes. aiokafka's
    # 500 ms default is what each hop costs on a broker that does not answer a
    # waiting fetch as data arrives (Tansu): a hop took ~200 ms. bench/bus_hop.py
    # on the test broker (loaded 2-core machine): 5 ms -> hops p50 7-14 ms and
    # an idle consumer at ~5-6 % of a core; 20 ms -> ~3 %; 100 ms -> 25 ms hops
    # and ~1 %. 5 ms keeps the planner loop (three hops) in milliseconds; raise
    # it on the URL where idle consumers matter more than latency.
    fetch_max_wait_ms: int = 5
    fetch_min_bytes: int = 1
    # After this long without a message, a consumer's fetch waits
    # fetch_idle_wait_ms instead (see _kafka_pacing): an idle consumer at 50 ms
    # costs ~3 % of a core instead of ~13 % at 5 ms (loaded 2-core machine),
    # and only the first message after the quiet period waits longer. A minute,
    # not seconds: while one lifetime's Task calls a slow model, every consumer
    # on the loop's three hops is quiet, and each would then add up to 50 ms to
    # the planner loop that follows (with 5 s, any Task over 5 s did).
    # fetch_idle_wait_ms <= fetch_max_wait_ms turns this off.
    fetch_idle_wait_ms: int = 50
    fetch_idle_after_ms: int = 60_000
    # Serving many keys (lifetimes) at once, the wait grows from
    # fetch_max_wait_ms towards fetch_batch_wait_ms, reached at fetch_batch_keys
    # keys within a second (see _kafka_pacing): fewer empty fetches per step.
    # fetch_batch_wait_ms <= fetch_max_wait_ms turns this off.
    fetch_batch_wait_ms: int = 15
    fetch_batch_keys: int = 16


_INT_OPTIONS = {
    "partitions",
    "replication",
    "max_message_bytes",
    "session_timeout_ms",
    "heartbeat_interval_ms",
    "linger_ms",
    "fetch_max_wait_ms",
    "fetch_min_bytes",
    "fetch_idle_wait_ms",
    "fetch_idle_after_ms",
    "fetch_batch_wait_ms",
    "fetch_batch_keys",
    "metadata_max_age_ms",
}


def parse_url(url: str, options: Mapping[str, Any]) -> KafkaSettings:
    """Settings from the URL's query, overridden by keyword options."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ConfigurationError(
            f"Kafka URL must look like kafka://host:port[,host:port], got {redact_url(url)!r}"
        )
    bootstrap = []
    for hostport in parts.netloc.split(","):
        host, _, port = hostport.strip().rpartition(":")
        if not host:
            host, port = port, "9092"
        if not host or not port.isdigit():
            raise ConfigurationError(f"{redact_url(url)!r}: bad broker address {hostport!r}")
        bootstrap.append(f"{host}:{port}")
    raw: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    raw.update(options)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            if name in _INT_OPTIONS:
                values[name] = int(value)
            elif name in {"join_timeout", "connect_timeout", "commit_timeout"}:
                values[name] = float(value)
            elif name in {"client_id", "compression_type"}:
                values[name] = str(value)
            else:
                raise ConfigurationError(f"{redact_url(url)!r}: unknown Kafka option {name!r}")
        except ValueError as exc:
            raise ConfigurationError(
                f"{redact_url(url)!r}: option {name}={value!r} is not a number"
            ) from exc
    settings = KafkaSettings(bootstrap=bootstrap, **values)
    if settings.partitions < 1 or settings.replication < 1 or settings.max_message_bytes < 1:
        raise ConfigurationError(
            f"{redact_url(url)!r}: partitions, replication, max_message_bytes must be > 0"
        )
    if (
        min(
            settings.fetch_max_wait_ms,
            settings.linger_ms,
            settings.fetch_idle_wait_ms,
            settings.fetch_idle_after_ms,
            settings.fetch_batch_wait_ms,
        )
        < 0
        or settings.fetch_min_bytes < 1
        or settings.fetch_batch_keys < 2
    ):
        raise ConfigurationError(
            f"{redact_url(url)!r}: fetch_max_wait_ms, fetch_idle_wait_ms, fetch_idle_after_ms,"
            " fetch_batch_wait_ms and linger_ms must be >= 0, fetch_min_bytes >= 1,"
            " fetch_batch_keys >= 2"
        )
    return settings
