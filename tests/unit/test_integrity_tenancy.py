"""StartLifetime with another tenant's lifetime id tells nothing about that lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tickrail.sdk.errors import ConfigurationError

from .test_api import Served, code, events_of, served


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as s:
        yield s


async def test_another_tenants_lifetime_id_is_refused_like_any_taken_id(stack: Served) -> None:
    graph = stack.graph("fan_out")
    async with stack.client("globex") as theirs, stack.client("acme") as ours:
        await theirs.start(graph, {"secret": 1}, lifetime_id="order-7")
        await ours.start(graph, {"x": 1}, lifetime_id="order-8")
        with pytest.raises(ConfigurationError) as foreign:  # globex's id, even its input
            await ours.start(graph, {"secret": 1}, lifetime_id="order-7")
        with pytest.raises(ConfigurationError) as own:  # acme's own id, another input
            await ours.start(graph, {"x": 2}, lifetime_id="order-8")
        assert code(foreign.value) == code(own.value) == grpc.StatusCode.ALREADY_EXISTS
        assert str(foreign.value).replace("order-7", "ID") == str(own.value).replace(
            "order-8", "ID"
        )
        assert "globex" not in str(foreign.value)
        # globex's lifetime is untouched: still its own, with its own input.
        events = await events_of(theirs, "order-7")
        assert events[0].tenant_id == "globex"
        assert events[0].started.input.inline == b'{"secret":1}'
