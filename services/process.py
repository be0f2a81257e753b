"""A role as its own OS process: ``tickrail data-plane | control-plane | executor``.

Serves /healthz, /readyz and /metrics, and shuts down gracefully on SIGTERM
or SIGINT: stop consuming, let in-flight work finish within the grace period,
commit, close. Exit status 0 after a requested stop, 1 if a role died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from tickrail.sdk.graph import AgentGraph
from tickrail.services.config import Settings
from tickrail.services.health import HealthServer
from tickrail.services.runtime import Runtime

log = logging.getLogger("tickrail.process")


async def serve(
    roles: Sequence[str],
    settings: Settings,
    graphs: Sequence[AgentGraph] = (),
    *,
    port: int | None = None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    runtime = Runtime(settings, graphs, roles=roles, watch=False)
    health = HealthServer(
        settings.http_port if port is None else port,
        ready=runtime.alive,
        metrics=runtime.metrics,
    )
    await health.start()
    names = "+".join(roles)
    try:
        async with runtime:
            if runtime.control_plane is not None:
                recovered = await runtime.control_plane.recover()
                if recovered:
                    log.warning("re-dispatched %d input(s) of running lifetimes", recovered)
            log.warning("%s ready (health on port %d)", names, health.port)
            while not stop.is_set():
                if not runtime.alive():
                    log.error("%s: a role stopped unexpectedly; shutting down", names)
                    return 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await stop.wait()
            log.warning("%s stopping (grace %.0f s)", names, settings.shutdown_grace_s)
    finally:
        await health.close()
    return 0
