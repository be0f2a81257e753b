"""The executor's Batcher: concurrent submits share one flush, outcomes reach every caller."""

from __future__ import annotations

import asyncio

import pytest

from tickrail.services.executor._batching import Batcher


class Recorder:
    def __init__(self, fail: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail  # raise on the call with this index
        self.release = asyncio.Event()
        self.release.set()
        self.entered = asyncio.Event()

    async def __call__(self, items: list[int]) -> None:
        self.calls.append(list(items))
        self.entered.set()
        await self.release.wait()
        if self.fail == len(self.calls) - 1:
            raise ConnectionError("bus down")


async def test_submits_ready_together_share_one_flush() -> None:
    flush = Recorder()
    batcher = Batcher(flush)
    await asyncio.gather(*(batcher.submit([i]) for i in range(20)))
    assert flush.calls == [list(range(20))]
    await batcher.submit([99])  # the next batch is a new flush
    assert flush.calls[1:] == [[99]]


async def test_a_linger_gathers_later_submits_until_drained() -> None:
    flush = Recorder()
    batcher = Batcher(flush, linger=3600)  # only drain() or max_items flushes here
    first = asyncio.ensure_future(batcher.submit([1]))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(batcher.submit([2, 3]))
    await asyncio.sleep(0)
    assert flush.calls == [] and not first.done()
    await batcher.drain()
    await asyncio.gather(first, second)
    assert flush.calls == [[1, 2, 3]]


async def test_max_items_flushes_at_once() -> None:
    flush = Recorder()
    batcher = Batcher(flush, linger=3600, max_items=3)
    await asyncio.gather(batcher.submit([1, 2]), batcher.submit([3]))
    assert flush.calls == [[1, 2, 3]]


async def test_a_failed_flush_raises_in_every_caller_of_that_batch_only() -> None:
    flush = Recorder(fail=0)
    batcher = Batcher(flush)
    results = await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    await batcher.submit([3])  # the next batch is unaffected
    assert flush.calls == [[1, 2], [3]]


async def test_a_cancelled_caller_does_not_cancel_the_shared_flush() -> None:
    flush = Recorder()
    flush.release.clear()
    batcher = Batcher(flush)
    leaving = asyncio.ensure_future(batcher.submit([1]))
    staying = asyncio.ensure_future(batcher.submit([2]))
    await flush.entered.wait()
    leaving.cancel()
    flush.release.set()
    await staying  # completes: the flush carrying both items went on
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert flush.calls == [[1, 2]]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="linger"):
        Batcher(Recorder(), linger=-1)
    with pytest.raises(ValueError, match="max_items"):
        Batcher(Recorder(), max_items=0)
