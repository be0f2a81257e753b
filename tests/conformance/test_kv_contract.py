"""KVStore contract: values with expiry, atomic counter hashes, namespaces."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tickrail.adapters import KVStore
from tickrail.adapters.kv.base import CounterKey
from tickrail.adapters.registry import open_kv
from tickrail.sdk.errors import AdapterClosedError


async def test_set_get_delete(kv: KVStore) -> None:
    assert await kv.get("missing") is None
    await kv.set("k", b"v1")
    await kv.set("k", b"v2\x00\xff")
    assert await kv.get("k") == b"v2\x00\xff"
    await kv.delete("k")
    await kv.delete("k")  # deleting an absent key is fine
    assert await kv.get("k") is None


async def test_value_ttl_expires(kv: KVStore) -> None:
    await kv.set("short", b"v", ttl=0.2)
    await kv.set("long", b"v", ttl=30)
    assert await kv.get("short") == b"v"
    await asyncio.sleep(0.35)
    assert await kv.get("short") is None
    assert await kv.get("long") == b"v"


async def test_update_counters_adds_and_returns_all_fields(kv: KVStore) -> None:
    assert await kv.get_counters("budget") == {}
    assert await kv.update_counters("budget", add={"tokens": 100, "cost": 0.1}) == {
        "tokens": 100.0,
        "cost": 0.1,
    }
    after = await kv.update_counters("budget", add={"cost": 0.2, "calls": 1})
    assert after == {"tokens": 100.0, "cost": pytest.approx(0.3), "calls": 1.0}
    assert await kv.get_counters("budget") == after
    await kv.delete("budget")
    assert await kv.get_counters("budget") == {}


async def test_maximum_keeps_the_larger_value(kv: KVStore) -> None:
    assert await kv.update_counters("peak", maximum={"latency": 5.5}) == {"latency": 5.5}
    assert await kv.update_counters("peak", maximum={"latency": 3}) == {"latency": 5.5}
    both = await kv.update_counters("peak", add={"n": 2}, maximum={"latency": 7, "size": 1})
    assert both == {"latency": 7.0, "n": 2.0, "size": 1.0}


async def test_concurrent_updates_sum_exactly(kv: KVStore) -> None:
    async def one(i: int) -> dict[str, float]:
        return await kv.update_counters(
            "tenant-a:day", add={"tokens": 1, "cost": 0.5}, maximum={"peak": i}
        )

    await asyncio.gather(*(one(i) for i in range(50)))

    assert await kv.get_counters("tenant-a:day") == {"tokens": 50.0, "cost": 25.0, "peak": 49.0}


async def test_counter_ttl_is_set_when_created_only(kv: KVStore) -> None:
    await kv.update_counters("window", add={"n": 1}, ttl=0.4)
    await asyncio.sleep(0.2)
    # A later ttl does not extend the window that started at creation.
    assert await kv.update_counters("window", add={"n": 1}, ttl=30) == {"n": 2.0}
    await asyncio.sleep(0.35)
    assert await kv.get_counters("window") == {}
    assert await kv.update_counters("window", add={"n": 1}) == {"n": 1.0}


async def test_count_once_counts_each_token_once_in_every_hash(kv: KVStore) -> None:
    keys = [CounterKey("lt"), CounterKey("tenant"), CounterKey("day", ttl=60)]
    once = {"marker": "gen", "seen": "lt:counted", "keys": keys}
    # No marker: the aggregates were lost (or never built); nothing changes.
    assert await kv.count_once(token="x1", add={"n": 1}, maximum={}, **once) is None  # type: ignore[arg-type]
    assert await kv.get_counters("lt") == {}
    await kv.set("gen", b"1")
    first = await kv.count_once(token="x1", add={"n": 1}, maximum={"peak": 3}, **once)  # type: ignore[arg-type]
    assert first is not None and first.counted
    assert first.counters == [{"n": 1.0, "peak": 3.0}] * 3
    again = await kv.count_once(token="x1", add={"n": 1}, maximum={"peak": 9}, **once)  # type: ignore[arg-type]
    assert again is not None and not again.counted
    assert again.counters == first.counters
    other = await kv.count_once(token="x2", add={"n": 2}, maximum={"peak": 1}, **once)  # type: ignore[arg-type]
    assert other is not None and other.counted
    assert other.counters == [{"n": 3.0, "peak": 3.0}] * 3


async def test_count_once_is_exact_under_concurrent_redelivery(kv: KVStore) -> None:
    await kv.set("gen", b"1")

    async def one(i: int) -> bool:
        done = await kv.count_once(
            marker="gen",
            seen="s",
            token=f"exec-{i % 10}",
            keys=[CounterKey("sum")],
            add={"tokens": 5},
            maximum={},
        )
        assert done is not None
        return done.counted

    counted = await asyncio.gather(*(one(i) for i in range(60)))
    assert sum(counted) == 10
    assert await kv.get_counters("sum") == {"tokens": 50.0}


async def test_expire_removes_a_key_later_and_ignores_absent_ones(kv: KVStore) -> None:
    await kv.expire("absent", 0.05)
    await kv.update_counters("h", add={"n": 1})
    await kv.expire("h", 0.05)
    deadline = asyncio.get_running_loop().time() + 10
    while await kv.get_counters("h"):
        assert asyncio.get_running_loop().time() < deadline, "the hash never expired"
        await asyncio.sleep(0.02)
    assert await kv.update_counters("h", add={"n": 1}) == {"n": 1.0}


async def test_namespaces_are_isolated(kv_namespace: Callable[[], str]) -> None:
    async with open_kv(kv_namespace()) as one, open_kv(kv_namespace()) as two:
        await one.set("k", b"one")
        await two.set("k", b"two")
        await one.update_counters("c", add={"n": 1})
        assert await one.get("k") == b"one"
        assert await two.get("k") == b"two"
        assert await two.get_counters("c") == {}
        await two.delete("k")
        assert await one.get("k") == b"one"


async def test_use_after_close_is_refused(kv: KVStore) -> None:
    await kv.close()
    await kv.close()
    with pytest.raises(AdapterClosedError):
        await kv.get("k")
    with pytest.raises(AdapterClosedError):
        await kv.update_counters("c", add={"n": 1})


async def test_redis_takes_its_password_from_redis_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A private server that requires a password (the shared test Redis has none).
    import shutil
    import socket
    import subprocess

    from tickrail.adapters import open_kv
    from tickrail.sdk.errors import AdapterError

    server = shutil.which("redis-server")
    assert server, "redis-server is needed for this test (it is on the CI machines)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            "s3cret-pass",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        monkeypatch.delenv("REDIS_PASSWORD", raising=False)
        with pytest.raises(AdapterError):
            async with open_kv(url):
                pass
        monkeypatch.setenv("REDIS_PASSWORD", "s3cret-pass")
        async with open_kv(url) as kv:
            await kv.set("k", b"v")
            assert await kv.get("k") == b"v"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
