"""``tickrail serve``: the lifecycle API in front of an embedded or a cloud deployment.

In the embedded profile the server is the state directory's owner (see
``tickrail.services.lifecycle.owner``): it runs every role, continues what a
dead owner left running, and serves the local socket beside the TCP address;
in the cloud profile it runs none and only publishes commands, reads the store
and follows the events topic, like ``tickrail run --profile cloud``. SIGTERM
or SIGINT stops the API server first (running calls get a grace period), then
the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from tickrail.sdk.errors import ConfigurationError, OwnerError
from tickrail.sdk.graph import AgentGraph
from tickrail.services.config import Settings
from tickrail.services.lifecycle import LifecycleService, Purpose, open_session

from .auth import Authenticator
from .server import serve_api

log = logging.getLogger("tickrail.api")

#: Seconds running calls (watch streams included) get to finish on shutdown.
STOP_GRACE_S = 5.0


def authenticator(address: str, tokens: Mapping[str, str] | None, insecure: bool) -> Authenticator:
    """Tokens by reference (tenant -> environment variable), or insecure on loopback."""
    if insecure:
        if tokens:
            raise ConfigurationError("choose tenant tokens or insecure mode, not both")
        return Authenticator.insecure_on(address)
    if not tokens:
        raise ConfigurationError(
            "the API needs tenant tokens (tenant -> environment variable holding the "
            "token), or insecure mode on a loopback address for local development"
        )
    return Authenticator.from_references(tokens)


def tls_credentials(cert: str | None, key: str | None) -> Any:
    """Server TLS credentials from PEM files, or None for plaintext."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigurationError("TLS needs both a certificate and its private key")
    try:
        chain, private = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read TLS file: {exc}") from exc
    return grpc.ssl_server_credentials([(private, chain)])


async def run_api_server(
    settings: Settings,
    graphs: Sequence[AgentGraph],
    *,
    address: str,
    tokens: Mapping[str, str] | None,
    insecure: bool,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT. Returns 0 after a requested stop, 1 if a role died.

    ``tokens`` maps each tenant to the *name* of the environment variable
    holding its token; every variable is read (and checked) before anything starts.
    """
    auth = authenticator(address, tokens, insecure)
    credentials = tls_credentials(tls_cert, tls_key)
    if credentials is None and not insecure and not _loopback(address):
        log.warning(
            "serving %s without TLS: bearer tokens cross the network in the clear unless "
            "a TLS-terminating proxy is in front (use --tls-cert/--tls-key)",
            address,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        async with open_session(
            settings,
            tenant=settings.resolved().tenant,
            purpose=Purpose.RUN,
            graphs=graphs,
            command=f"tickrail serve {address}",
        ) as session:
            if session.service is None:
                raise OwnerError(
                    f"the state directory is owned by {session.where}; stop it before "
                    "serving, or use that process"
                )
            runtime = session.service.runtime
            # Its own service: callers over TCP get only the graphs served here,
            # never a graph file of their choosing (the owner socket may name one).
            service = LifecycleService(runtime, on_started=session.service.on_started)
            api = await serve_api(service, address=address, auth=auth, credentials=credentials)
            log.warning("tickrail API serving on %s (port %d)", address, api.port)
            try:
                return await _until_stopped(service, stop)
            finally:
                await api.set_serving(False)
                await api.stop(STOP_GRACE_S)  # the server first, then the runtime
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in {"localhost", "127.0.0.1", "::1"} or host.startswith("127.")


async def _until_stopped(service: LifecycleService, stop: asyncio.Event) -> int:
    while not stop.is_set():
        if not service.healthy():
            log.error("a runtime role stopped unexpectedly; shutting the API down")
            return 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await stop.wait()
    log.warning("tickrail API stopping (grace %.0f s)", STOP_GRACE_S)
    return 0
