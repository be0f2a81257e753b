"""Starting against a server that accepts connections and never answers fails within
a bound, with a retriable error naming the dependency, instead of hanging for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tickrail.adapters import open_bus, open_kv, open_store
from tickrail.sdk.errors import AdapterError


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(
    ("opener", "url", "dependency"),
    [
        (open_bus, "kafka://127.0.0.1:{port}?connect_timeout=1", "kafka"),
        (open_store, "postgresql://u@127.0.0.1:{port}/db?connect_timeout=1", "postgres"),
        (open_kv, "redis://127.0.0.1:{port}/0?socket_timeout=1", "redis"),
    ],
)
async def test_start_against_a_silent_server_fails_within_its_bound(
    silent_port: int, opener: object, url: str, dependency: str
) -> None:
    # A hang would be caught by the per-test timeout: the bound asked for is 1 s.
    with pytest.raises(AdapterError) as caught:
        async with opener(url.format(port=silent_port)):  # type: ignore[operator]
            pass
    assert caught.value.retriable and caught.value.dependency == dependency
    assert str(silent_port) in str(caught.value)  # the message names the address
