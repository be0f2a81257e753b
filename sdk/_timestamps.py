"""Protobuf Timestamps from and to integer nanoseconds, without the pure-Python helpers.

``Timestamp.FromNanoseconds`` / ``ToNanoseconds`` are Python methods of the
well-known-type mixin (a dozen bytecodes and checks each), and the hot path
stamps or reads several per step. These give the same values: FromNanoseconds
sets ``divmod(ns, 10**9)``, ToNanoseconds returns ``seconds * 10**9 + nanos``.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

NS = 1_000_000_000


def timestamp(ns: int) -> Timestamp:
    """A Timestamp of ``ns`` nanoseconds since the epoch."""
    seconds, nanos = divmod(ns, NS)
    return Timestamp(seconds=seconds, nanos=nanos)


def stamp(ts: Timestamp, ns: int) -> None:
    """Set ``ts`` (a field of a message, in place) to ``ns`` nanoseconds since the epoch."""
    ts.seconds, ts.nanos = divmod(ns, NS)


def seconds_of(ts: Timestamp) -> float:
    """``ts.ToNanoseconds() / 1e9``: the epoch seconds the stores record."""
    return (ts.seconds * NS + ts.nanos) / 1e9
