"""The cached-hash partitioner picks exactly the partition aiokafka's default does."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("aiokafka")

from aiokafka.partitioner import DefaultPartitioner

from tickrail.adapters.bus._kafka_partitioner import CachedHashPartitioner


@pytest.mark.parametrize("count", [1, 2, 6, 7, 32])
def test_same_partition_as_aiokafka_for_every_key_asked_twice(count: int) -> None:
    partitions = list(range(count))
    cached, default = CachedHashPartitioner(max_keys=50), DefaultPartitioner()
    keys = [str(uuid.uuid4()).encode() for _ in range(200)] + [b"", b"a", b"abcde"]
    for key in keys + keys:  # the second round answers from the cache
        assert cached(key, partitions, partitions) == default(key, partitions, partitions)


def test_the_cache_stays_within_its_bound() -> None:
    cached = CachedHashPartitioner(max_keys=10)
    for i in range(100):
        cached(f"lifetime-{i}".encode(), [0, 1, 2], [0, 1, 2])
    assert len(cached._hashes) <= 10


def test_a_message_without_key_goes_to_an_available_partition() -> None:
    assert CachedHashPartitioner()(None, [0, 1, 2], [2]) == 2
