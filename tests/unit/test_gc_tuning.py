"""The collector's thresholds: set for a process running roles, unless it chose its own."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickrail.services import gc_tuning
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

from .graphs import loop_graph


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_defaults_are_replaced_and_a_chosen_setting_is_kept(thresholds: None) -> None:
    gc.set_threshold(*gc_tuning.PYTHON_DEFAULTS)
    assert gc_tuning.tune()
    assert gc.get_threshold() == (gc_tuning.YOUNG, gc_tuning.MIDDLE, gc_tuning.FULL_AFTER)

    gc.set_threshold(5000, 20, 20)
    assert not gc_tuning.tune()
    assert gc.get_threshold() == (5000, 20, 20)


async def test_a_runtime_running_roles_tunes_and_a_client_does_not(
    tmp_path: Path, thresholds: None
) -> None:
    graph = loop_graph(1)
    gc.set_threshold(*gc_tuning.PYTHON_DEFAULTS)
    async with Runtime(Settings(profile="test", home=str(tmp_path / "a")), [graph], roles=()):
        assert gc.get_threshold() == gc_tuning.PYTHON_DEFAULTS
    async with Runtime(Settings(profile="test", home=str(tmp_path / "b")), [graph]) as rt:
        await rt.wait(await rt.start_lifetime(graph), timeout=60)
        assert gc.get_threshold()[2] == gc_tuning.FULL_AFTER
