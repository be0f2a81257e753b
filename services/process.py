"""A role as its own OS process: ``tickrail data-plane | control-plane | executor``.

Serves /healthz, /readyz and /metrics, and shuts down gracefully on SIGTERM
or SIGINT: stop consuming, let in-flight work finish within the grace period,
commit, close. A signal during startup (a broker that does not answer) stops
it too. Exit status 0 after a requested stop; 1 if a role failed (named in
the log) or startup did not finish within ``start_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from tickrail.sdk.errors import AdapterError, RoleError
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
        detail=lambda: runtime.phase,
        waiting_for=runtime.health.not_ready,
    )
    await health.start()
    names = "+".join(roles)
    try:
        if not await _until_started(runtime, stop):
            log.warning("%s: stopped during startup", names)
            return 0
        try:
            if runtime.control_plane is not None:
                try:
                    recovered = await runtime.control_plane.recover()
                except AdapterError as exc:
                    if not exc.retriable:
                        raise
                    # The loop tries again once the dependency answers.
                    log.warning("%s: recovery deferred: %s", names, exc)
                    runtime.control_plane.request_recovery()
                    recovered = 0
                if recovered:
                    log.warning("re-dispatched %d input(s) of running lifetimes", recovered)
            log.warning("%s ready (health on port %d)", names, health.port)
            failed = asyncio.ensure_future(runtime.failed())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({failed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if failed.done():
                log.error("%s: %s; shut down", names, failed.result())
                return 1
            failed.cancel()
            log.warning("%s stopping (grace %.0f s)", names, settings.shutdown_grace_s)
        finally:
            await runtime.__aexit__(None, None, None)
    except RoleError as exc:
        log.error("%s: %s", names, exc)
        return 1
    finally:
        await health.close()
    return 0


async def _until_started(runtime: Runtime, stop: asyncio.Event) -> bool:
    """Start the runtime unless a signal comes first; True when it started.

    Startup may wait on a service that does not answer; a SIGTERM then
    cancels it (the runtime closes what it had opened) instead of being
    ignored until the connection times out.
    """
    starting = asyncio.ensure_future(runtime.__aenter__())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if starting.done():
        starting.result()  # raises what startup raised
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False
