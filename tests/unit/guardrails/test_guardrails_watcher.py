"""Hot reload: good files replace the set, bad ones keep the previous set."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WriteRules, rule

from tickrail.sdk.errors import PolicyError
from tickrail.services.control_plane.guardrails import PolicyWatcher


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll: the watcher has no event to wait on, by design (it only swaps a value)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def rule_names(watcher: PolicyWatcher) -> list[str]:
    return [r.name for r in watcher.current.rules]


def test_an_invalid_initial_set_is_refused(rules_file: WriteRules) -> None:
    with pytest.raises(PolicyError):
        PolicyWatcher([rules_file(rule("bad", "lifetime.count >"))])


def test_reload_picks_up_good_files(rules_file: WriteRules) -> None:
    path = rules_file(rule("one", "lifetime.count > 1"))
    watcher = PolicyWatcher([path])
    before = watcher.current.version
    rules_file(rule("two", "lifetime.count > 2"))
    assert watcher.reload() is True
    assert rule_names(watcher) == ["two"] and watcher.current.version != before


def test_a_bad_reload_keeps_the_previous_set(
    rules_file: WriteRules, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[PolicyError] = []
    path = rules_file(rule("one", "lifetime.count > 1"))
    watcher = PolicyWatcher([path], on_error=errors.append)
    previous = watcher.current
    path.write_text(path.read_text().replace("lifetime.count > 1", "lifetime.count >"))
    with caplog.at_level(logging.ERROR, logger="tickrail.guardrails"):
        assert watcher.reload() is False
    assert watcher.current is previous
    assert len(errors) == 1 and errors[0].rule == "one" and errors[0].file == str(path)
    assert f"keeping version {previous.version}" in caplog.text and "rule 'one'" in caplog.text


async def test_run_reloads_when_a_file_changes(tmp_path: Path, rules_file: WriteRules) -> None:
    rules_file(rule("one", "lifetime.count > 1"), name="a.yaml")
    errors: list[PolicyError] = []
    watcher = PolicyWatcher([tmp_path], interval=0.01, on_error=errors.append)
    task = asyncio.create_task(watcher.run())
    try:
        rules_file(rule("two", "lifetime.count > 1"), name="b.yaml")
        await eventually(lambda: rule_names(watcher) == ["one", "two"])

        good = watcher.current
        (tmp_path / "b.yaml").write_text("rules: [oops")
        await eventually(lambda: len(errors) == 1)
        await asyncio.sleep(0.05)  # several polls: still one error, still the good set
        assert len(errors) == 1 and watcher.current is good

        (tmp_path / "b.yaml").unlink()
        await eventually(lambda: rule_names(watcher) == ["one"])
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_sighup_reloads(rules_file: WriteRules) -> None:
    path = rules_file(rule("one", "lifetime.count > 1"))
    watcher = PolicyWatcher([path])
    loop = asyncio.get_running_loop()
    watcher.install_sighup(loop)
    try:
        rules_file(rule("two", "lifetime.count > 1"))
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: rule_names(watcher) == ["two"])
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
