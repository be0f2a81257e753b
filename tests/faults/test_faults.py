"""Faults injected mid-run into a cloud deployment, 20 concurrent lifetimes each (a
fan-out, a join and a loop; some cross a token budget): every lifetime ends as it
must, nothing is lost or run twice, replay is OK and budgets are exact.

Each test prints how long the lifetimes took to finish after the fault ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .conftest import ROLES, FaultEnv
from .driver import plans

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

OUTAGE_S = 10.0


def postgres_outage(env: FaultEnv) -> None:
    """Every Postgres connection dropped, new ones refused, for 10 s."""
    d = env.deployment
    env.proxy.outage()
    named: set[str] = set()
    ends = time.monotonic() + OUTAGE_S
    try:
        while time.monotonic() < ends:
            for name in ROLES:
                status, _ = d.probe(name, "/healthz")
                assert status == 200, f"{name} /healthz answered {status} during the outage"
                status, body = d.probe(name, "/readyz")
                if status == 503 and "postgres" in body:
                    named.add(name)
            time.sleep(0.2)  # probe interval while the outage lasts
    finally:
        env.proxy.restore()
    assert named, "no role said on /readyz that it waits for postgres"


def redis_restart(env: FaultEnv) -> None:
    """Redis restarts without persistence: every guardrail aggregate is gone."""
    env.redis.restart()


def broker_restart(env: FaultEnv) -> None:
    """The broker restarts without durable storage: topics, messages, offsets, groups gone."""
    env.broker.restart()


def kill_each(env: FaultEnv) -> None:
    """SIGKILL each role in turn (no shutdown, no commit), restarting it each time."""
    for name in ROLES:
        env.deployment.kill(name)
        env.deployment.relaunch([name])


def kill_data_and_control_plane(env: FaultEnv) -> None:
    env.deployment.kill("data-plane")
    env.deployment.kill("control-plane")
    env.deployment.relaunch(["data-plane", "control-plane"])


def terminate_each(env: FaultEnv) -> None:
    """SIGTERM each role in turn under load: a clean exit 0, then a restart."""
    for name in ROLES:
        assert env.deployment.terminate([name]) == {name: 0}, env.deployment.log(name)
        env.deployment.relaunch([name])


def terminate_several(env: FaultEnv) -> None:
    together = ["data-plane", "control-plane", "executor-tasks"]
    codes = env.deployment.terminate(together)
    assert codes == dict.fromkeys(together, 0), {n: env.deployment.log(n) for n in together}
    env.deployment.relaunch(together)


FAULTS: dict[str, Callable[[FaultEnv], None]] = {
    "postgres-outage": postgres_outage,
    "redis-restart": redis_restart,
    "broker-restart": broker_restart,
    "sigkill-each-role": kill_each,
    "sigkill-data-and-control-plane": kill_data_and_control_plane,
    "sigterm-each-role": terminate_each,
    "sigterm-several-roles": terminate_several,
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_lifetimes_survive(fault: str, fault_env: FaultEnv) -> None:
    lifetimes = plans(20)
    tenant = f"t-{fault}-{lifetimes[0].lifetime_id[:9]}"
    driver = fault_env.driver
    try:
        await driver.start(lifetimes, tenant)
        await driver.mid_run(lifetimes)
        FAULTS[fault](fault_env)
        recovery = await driver.finished(lifetimes)
        ended = f"all {len(lifetimes)} lifetimes ended {recovery:.1f} s after the fault ended"
        print(f"\n{fault}: {ended}")
        await driver.check(lifetimes, tenant)
        fault_env.deployment.assert_alive()
        fault_env.deployment.wait_ready(timeout=120)  # every role ready again
    except BaseException:
        # What every process of every role said (each start has its own log).
        print(fault_env.deployment.tails())
        print(fault_env.broker.tail())
        raise
