"""``tickrail ui``: the console in front of the local state or a cloud deployment.

The console reaches the lifecycle layer the way every command does, through
``open_session``: in the embedded profile it becomes the state directory's
owner (runs every role, continues what a dead owner left running, serves the
owner socket so ``tickrail run`` and the other commands work beside it), or,
when another process owns the state, talks to that owner over its socket; in
the cloud profile it runs no role and the deployment does the work. Each
tenant gets its own ``TickrailClient`` (in-process when the service runs
here), so every page acts for exactly the tenant it was authenticated as.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tickrail.sdk.client import TickrailClient
from tickrail.sdk.errors import ConfigurationError
from tickrail.sdk.graph import AgentGraph
from tickrail.services.config import Settings
from tickrail.services.lifecycle import Purpose, Session, local_client, open_session

from .auth import ConsoleAuth
from .client import LifecycleClient

#: How long open requests (event streams above all) get after SIGTERM.
SHUTDOWN_GRACE_S = 5
log = logging.getLogger("tickrail.console")


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


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Clients:
    """One client per tenant for a session; closed together."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._clients: dict[str, TickrailClient] = {}

    def __call__(self, tenant: str) -> LifecycleClient:
        client = self._clients.get(tenant)
        if client is None:
            if self.session.service is not None:  # the service runs in this process
                client = local_client(self.session.service, tenant)
            else:  # another process owns the state: its socket, as any command would
                client = TickrailClient(self.session.client.address, tenant=tenant)
            self._clients[tenant] = client
        return client

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

    from .app import create_app

    settings = settings.resolved()
    host, port = split_address(address)
    auth = console_auth(host, tokens, settings.tenant)
    listener = _listen(host, port)  # before anything starts: a busy port is a clear error
    async with open_session(
        settings,
        tenant=settings.tenant,
        purpose=Purpose.RUN,
        graphs=graphs,
        command=f"tickrail ui --address {address}",
    ) as session:
        clients = Clients(session)
        server = _server_class()(
            uvicorn.Config(
                create_app(auth, clients),
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
                # A page following a lifetime holds an event stream open for as
                # long as the lifetime runs; without a bound, SIGTERM would wait
                # for every such page to be closed.
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            )
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop_serving)
        watchdog = asyncio.create_task(_watch(session, server))
        log.warning(
            "tickrail console on http://%s:%d/ (%s profile, through %s)",
            host if ":" not in host else f"[{host}]",
            port,
            settings.profile,
            session.where,
        )
        try:
            await server.serve(sockets=[listener])
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await clients.close()
            listener.close()
        return 0 if watchdog.cancelled() or not watchdog.result() else 1


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


async def _watch(session: Session, server: Any) -> bool:
    """Stop serving if a role of this process dies; True then."""
    service = session.service
    if service is None:
        await asyncio.Event().wait()  # another process owns the roles
        return False
    # Roles offer no "died" event to wait on, so look once a second.
    while service.healthy():  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    log.error("a runtime role stopped unexpectedly; shutting the console down")
    server.should_exit = True
    return True
