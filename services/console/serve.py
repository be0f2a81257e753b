"""``tickrail ui``: the console in front of the local state or a cloud deployment.

The console only talks to the lifecycle layer through ``TickrailClient``. Until
the lifecycle layer offers an in-process transport, this module gives it one
the same way ``tickrail serve`` does: a Runtime (every role in the embedded
profile; none in the cloud profile, where it reads the store and publishes
commands like ``tickrail serve``) behind the gRPC lifecycle API, bound to a
Unix socket in a private directory (mode 0700) so nothing else on the machine
reaches it, and checked with the same tenant tokens as the console itself.

In the embedded profile the executor must run the graphs of the lifetimes the
console resumes or forks: besides ``--graph``, the graph each recorded graph id
was last started with (the ``tickrail.graph`` label ``tickrail run`` records)
is loaded when the console starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tickrail.sdk.errors import ConfigurationError, TickrailError
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.loading import load_graph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

from .auth import ConsoleAuth
from .client import LifecycleClient

log = logging.getLogger("tickrail.console")

GRAPH_LABEL = "tickrail.graph"
STOP_GRACE_S = 3.0


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) into host and port, with a clear error."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigurationError(f"--address {address!r} must look like HOST:PORT")
    return host.strip("[]"), int(port)


def console_auth(host: str, tokens: Mapping[str, str] | None, tenant: str) -> ConsoleAuth:
    """Tenant tokens by reference, or (no tokens) insecure on loopback only."""
    if tokens:
        return ConsoleAuth.from_references(tokens)
    return ConsoleAuth.insecure_on(host, tenant)


async def recorded_graphs(runtime: Runtime, given: Sequence[AgentGraph]) -> list[AgentGraph]:
    """``given`` plus, per recorded graph id not among them, its newest lifetime's graph code.

    A graph that no longer loads (moved file, other version) is skipped with a
    warning: its lifetimes can still be looked at, only not resumed or forked.
    """
    graphs = {g.graph_id: g for g in given}
    tried: set[str] = set(graphs)
    for summary in await runtime.store.list_lifetimes(limit=100_000):
        if summary.graph_id in tried:
            continue
        tried.add(summary.graph_id)
        events = await runtime.store.events(summary.lifetime_id)
        if not events:
            continue
        started = pb.LifetimeEvent.FromString(events[0].body).started
        target = started.labels.get(GRAPH_LABEL)
        if not target:
            continue
        try:
            graph = load_graph(target)
        except (TickrailError, OSError, ImportError) as exc:
            log.warning("graph %s (%s) does not load: %s", summary.graph_id, target, exc)
            continue
        if (graph.graph_id, graph.version) != (started.graph.graph_id, started.graph.version):
            log.warning(
                "%s is now %s@%s, not %s@%s: its lifetimes cannot be resumed here",
                target,
                graph.graph_id,
                graph.version,
                started.graph.graph_id,
                started.graph.version,
            )
            continue
        graphs[graph.graph_id] = graph
    return list(graphs.values())


class Clients:
    """One ``TickrailClient`` per tenant, over the private socket; closed together."""

    def __init__(self, target: str, auth: ConsoleAuth) -> None:
        self.target = target
        self.auth = auth
        self._clients: dict[str, Any] = {}

    def __call__(self, tenant: str) -> LifecycleClient:
        from tickrail.sdk.client import TickrailClient

        client = self._clients.get(tenant)
        if client is None:
            token = None if self.auth.insecure else self.auth.token_of(tenant)
            client = TickrailClient(self.target, tenant=tenant, token=token, timeout=60.0)
            self._clients[tenant] = client
        result: LifecycleClient = client
        return result

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


async def run_console(
    settings: Settings,
    graphs: Sequence[AgentGraph],
    *,
    address: str,
    tokens: Mapping[str, str] | None,
) -> int:
    """Serve the console until SIGTERM or SIGINT; 1 if a runtime role died."""
    import uvicorn

    from tickrail.services.api.auth import Authenticator
    from tickrail.services.api.server import serve_api

    from .app import create_app

    settings = settings.resolved()
    host, port = split_address(address)
    auth = console_auth(host, tokens, settings.tenant)
    inner = (
        Authenticator({t: auth.token_of(t) or "" for t in auth.tokens})
        if not auth.insecure
        else Authenticator({}, insecure=True)
    )
    cloud = settings.profile == "cloud"
    private = Path(tempfile.mkdtemp(prefix="tickrail-ui-"))  # mode 0700
    runtime = Runtime(settings, roles=(), watch=False) if cloud else None
    try:
        if runtime is None:
            # Learn which graph code the recorded lifetimes need before starting the roles.
            async with Runtime(settings, roles=(), watch=False) as probe:
                graphs = await recorded_graphs(probe, graphs)
            runtime = Runtime(settings, graphs)
        async with runtime:
            if runtime.control_plane is not None:
                served = {g.graph_id for g in graphs}
                recovered = await runtime.control_plane.recover(graph_ids=served)
                if recovered:
                    log.warning("re-dispatched %d input(s) of running lifetimes", recovered)
            target = f"unix:{private / 'api.sock'}"
            api = await serve_api(runtime, address=target, auth=inner)
            clients = Clients(target, auth)
            app = create_app(auth, clients)
            server = _Server(
                uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
            )
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, server.stop_serving)
            watchdog = asyncio.create_task(_watch(runtime, server))
            log.warning(
                "tickrail console on http://%s:%d/ (%s profile; graphs: %s)",
                host if ":" not in host else f"[{host}]",
                port,
                settings.profile,
                ", ".join(sorted(g.graph_id for g in graphs)) or "none",
            )
            try:
                await server.serve()
            finally:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
                await clients.close()
                await api.stop(STOP_GRACE_S)
            return 1 if runtime.started and not runtime.alive() else 0
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, minus its signal handling: it re-raises SIGTERM after a graceful
        stop, which would end the process before the runtime shut down cleanly."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        def stop_serving(self) -> None:
            self.should_exit = True

    return Server


def _Server(config: Any) -> Any:
    return _server_class()(config)


async def _watch(runtime: Runtime, server: Any) -> None:
    # Roles offer no "died" event to wait on, so look once a second.
    while runtime.alive():  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    log.error("a runtime role stopped unexpectedly; shutting the console down")
    server.should_exit = True
