"""The retry helper every role loop uses: retriable failures are waited out, named in
readiness and counted; anything else ends the caller at once."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from tickrail.sdk.errors import AdapterError, ConfigurationError
from tickrail.services.health import HealthServer
from tickrail.services.metrics import render
from tickrail.services.retry import Backoff, Health, Stopped, retrying

FAST = Backoff(initial=0.001, maximum=0.01)


def retried(dependency: str) -> float:
    return REGISTRY.get_sample_value("tickrail_retries_total", {"dependency": dependency}) or 0.0


def flaky(failures: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    async def operation() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return calls, operation


async def test_retriable_failures_are_retried_until_the_dependency_answers() -> None:
    health = Health()
    before = retried("postgres")
    calls, operation = flaky(3, AdapterError("refused", retriable=True, dependency="postgres"))
    reconnects: list[str] = []

    async def reconnect(exc: AdapterError) -> None:
        reconnects.append(exc.dependency)

    result = await retrying(
        operation,  # type: ignore[arg-type]
        what="test",
        health=health,
        backoff=FAST,
        reconnect=reconnect,
    )
    assert result == "done" and len(calls) == 4
    assert reconnects == ["postgres"] * 3
    assert health.retries == {"postgres": 3}
    assert health.not_ready() == ""  # up again
    assert retried("postgres") == before + 3
    assert REGISTRY.get_sample_value("tickrail_dependency_up", {"dependency": "postgres"}) == 1


async def test_a_non_retriable_error_is_raised_at_once() -> None:
    calls, operation = flaky(1, AdapterError("constraint violated", retriable=False))
    with pytest.raises(AdapterError, match="constraint"):
        await retrying(operation, what="test", health=Health(), backoff=FAST)  # type: ignore[arg-type]
    calls2, operation2 = flaky(1, ConfigurationError("bad url"))
    with pytest.raises(ConfigurationError):
        await retrying(operation2, what="test", health=Health(), backoff=FAST)  # type: ignore[arg-type]
    assert len(calls) == len(calls2) == 1


async def test_a_stop_interrupts_the_wait_and_readiness_names_the_dependency() -> None:
    health = Health()
    stopping = asyncio.Event()
    _, operation = flaky(10**9, AdapterError("timed out", retriable=True, dependency="redis"))
    task = asyncio.create_task(
        retrying(
            operation,  # type: ignore[arg-type]
            what="test",
            health=health,
            stopping=stopping,
            backoff=Backoff(initial=30, maximum=30),  # would wait 15-30 s without the stop
        )
    )
    for _ in range(3000):  # up to 30 s on a loaded machine
        if health.down:
            break
        await asyncio.sleep(0.01)
    assert health.down, "the first failure was never reported"
    assert REGISTRY.get_sample_value("tickrail_dependency_up", {"dependency": "redis"}) == 0
    server = HealthServer(
        0, host="127.0.0.1", ready=lambda: True, metrics=render, waiting_for=health.not_ready
    )
    await server.start()
    try:
        status, body = await get(server.port, "/readyz")
        assert status == 503 and "redis" in body and "timed out" in body
        assert (await get(server.port, "/healthz"))[0] == 200
    finally:
        await server.close()
    stopping.set()
    with pytest.raises(Stopped):
        await asyncio.wait_for(task, timeout=10)


async def get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = (await reader.read()).decode()
    writer.close()
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(initial=0.2, maximum=5.0)
    delays = [backoff.delay(n) for n in range(50)]
    assert all(0 < d <= 5.0 for d in delays)
    assert all(d >= 2.5 for d in delays[10:])  # capped: between half the cap and the cap
    assert len(set(delays)) > 40
