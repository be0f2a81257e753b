"""Crashes in the cloud profile lose nothing: a role killed mid-lifetime (SIGKILL: no
shutdown, no commit) and started again picks up exactly where the log says."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tickrail.adapters import open_store
from tickrail.services.config import Settings
from tickrail.services.control_plane.replay import replay_lifetime

from .cloud import EXAMPLES, ROOT, Deployment

pytestmark = pytest.mark.integration


def start_run(config: Path) -> subprocess.Popen[str]:
    """``tickrail run`` of parallel_tools (three 1 s tools), in the background."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickrail.services.cli.main",
            "run",
            str(EXAMPLES / "parallel_tools.py"),
            "--json",
            "--quiet",
            "--timeout",
            "150",
            "--config",
            str(config),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def lifetime_ids(config: Path) -> set[str]:
    settings = Settings(**yaml.safe_load(config.read_text())).resolved()
    async with open_store(settings.store_url) as store:
        return {info.lifetime_id for info in await store.list_lifetimes(limit=1000)}


async def wait_until_recorded(
    config: Path, name: str, known: set[str], timeout: float = 120
) -> None:
    """Until a lifetime not in ``known`` has an execution of node ``name`` in the store."""
    settings = Settings(**yaml.safe_load(config.read_text())).resolved()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with open_store(settings.store_url) as store:
        while loop.time() < deadline:
            for info in await store.list_lifetimes(limit=10):
                if info.lifetime_id in known:
                    continue
                if any(r.name == name for r in await store.executions(info.lifetime_id)):
                    return
            await asyncio.sleep(0.1)  # poll interval; the bound is the deadline
    raise AssertionError(f"no {name!r} execution was recorded within {timeout:.0f}s")


async def check_one_record_each(config: Path, lifetime_id: str) -> None:
    settings = Settings(**yaml.safe_load(config.read_text())).resolved()
    async with open_store(settings.store_url) as store:
        records = await store.executions(lifetime_id)
        report = await replay_lifetime(store, lifetime_id)
    names = sorted(r.name for r in records)
    assert names == sorted(
        ["planner", "web_search", "weather", "stock_quote", "synthesize", "answer"]
    ), names
    assert report.ok, report.divergence


@pytest.mark.parametrize(
    ("victim", "role"), [("control-plane", "control-plane"), ("executor-1", "executor")]
)
async def test_a_role_killed_mid_lifetime_and_restarted_loses_nothing(
    victim: str, role: str, deployment: Deployment
) -> None:
    known = await lifetime_ids(deployment.config)
    run = start_run(deployment.config)
    try:
        # The planner has fanned out; the three tools (1 s each) are running.
        await wait_until_recorded(deployment.config, "planner", known)
        deployment.kill(victim)
        await asyncio.sleep(1.5)  # the tools finish (or die with the executor) while it is down
        deployment.restart(victim, role)
        out, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:  # a failure above: do not leave the run (or its pipes) behind
            run.kill()
            run.communicate()
    assert run.returncode == 0, err + out
    summary = json.loads(out)
    assert summary["status"] == "COMPLETED" and summary["executions"] == 6
    await check_one_record_each(deployment.config, summary["lifetime_id"])


async def test_a_run_started_while_the_control_plane_is_down_waits_for_it(
    deployment: Deployment,
) -> None:
    """``tickrail run`` publishes its start and keeps asking (same lifetime id) until a
    control plane records it, however long the control plane takes to come back
    (longer than the lifecycle layer's 10 s per attempt here)."""
    deployment.kill("control-plane")
    run = start_run(deployment.config)
    try:
        await asyncio.sleep(12.0)  # the outage being tested: the run must outlast it
        deployment.restart("control-plane", "control-plane")
        out, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, err + out
    assert "has not recorded the start" in err  # said once, not per attempt
    assert err.count("still waiting") == 1
    summary = json.loads(out)
    assert summary["status"] == "COMPLETED" and summary["executions"] == 6
    await check_one_record_each(deployment.config, summary["lifetime_id"])
