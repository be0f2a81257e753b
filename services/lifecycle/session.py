"""How a command reaches the lifecycle service: the one decision every front end shares.

``open_session`` yields a ``Session`` whose ``client`` is a TickrailClient, so
the caller does not care where the service runs:

- ``--server HOST:PORT``: a ``tickrail serve`` over gRPC;
- the cloud profile: a service in this process that publishes commands to the
  deployment's control plane and follows its events topic (it runs no role);
- the embedded profile: the owner of the state directory over its Unix socket
  when one is alive; otherwise this process takes the lock and becomes the
  owner (``session.owner`` is then set): it runs every role, recovers what a
  dead owner left running, and serves the socket so other commands reach it;
- the test profile (in-memory state): always this process.

A command that only reads (``Purpose.READ``) never becomes a full owner: it
holds the lock while it reads and starts no role, so ``tickrail lifetimes
list`` never sets orphaned lifetimes going. ``Purpose.STEER`` (pause, abort)
owns without recovering anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickrail.sdk.client import TickrailClient
from tickrail.sdk.errors import OwnerError
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

from ._graphs import resolve_from_labels
from .local import local_client
from .owner import StateLock, describe, orphaned_graphs, owner_info, read_owner, socket_path
from .service import LifecycleService
from .stops import StopWatch

log = logging.getLogger("tickrail.owner")

#: How long a command waits for a busy state directory (an owner starting, or a
#: reader holding the lock) before giving up with the owner named.
OWNER_WAIT_S = 30.0


class Purpose(enum.Enum):
    READ = "read"  # list, show, watch, usage, replay
    STEER = "steer"  # pause, abort: own if needed, recover nothing else
    RUN = "run"  # run, resume, fork, serve: own and continue orphaned lifetimes


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """``--server`` and how to reach it."""

    address: str
    token: str | None = None
    secure: bool = False
    credentials: Any = None


@dataclass(slots=True)
class Owner:
    """This process owns the embedded state: its roles, the service, the socket."""

    runtime: Runtime
    service: LifecycleService
    active: set[str] = field(default_factory=set)  # lifetimes running through this owner
    recovered: list[str] = field(default_factory=list)
    _watches: dict[str, StopWatch] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def started(self, lifetime_id: str) -> None:
        self.active.add(lifetime_id)
        self._watches[lifetime_id] = StopWatch()
        self._changed.set()

    def on_event(self, event: pb.LifetimeEvent) -> None:
        watch = self._watches.get(event.lifetime_id)
        if watch is not None and watch.stops(event):
            self.active.discard(event.lifetime_id)
            del self._watches[event.lifetime_id]
            self._changed.set()

    async def until_idle(self, idle_s: float = 0.0) -> None:
        """Wait until no lifetime runs through this owner (for ``idle_s`` in a row)."""
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            if not self.active:
                if idle_s <= 0:
                    return
                quiet_until = loop.time() + idle_s
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(quiet_until):
                        await self._changed.wait()
                if not self.active and loop.time() >= quiet_until:
                    return
                continue
            await self._changed.wait()


@dataclass(slots=True)
class Session:
    client: TickrailClient
    owner: Owner | None = None
    where: str = "in-process"  # for messages: the owner's pid, the server, ...
    service: LifecycleService | None = None  # when the service runs in this process


@contextlib.asynccontextmanager
async def open_session(
    settings: Settings,
    *,
    tenant: str,
    purpose: Purpose,
    graphs: Sequence[AgentGraph] = (),
    server: ServerOptions | None = None,
    command: str = "tickrail",
) -> AsyncIterator[Session]:
    """A Session for ``tenant`` (see the module docstring for where it leads)."""
    settings = settings.resolved()
    if server is not None:
        client = TickrailClient(
            server.address,
            tenant=tenant,
            token=server.token,
            secure=server.secure,
            credentials=server.credentials,
        )
        async with client:
            yield Session(client, where=server.address)
        return
    if settings.profile == "cloud":
        # No role here: commands go to the deployment's control plane over the
        # bus, and this process follows its events topic.
        async with Runtime(settings, graphs, roles=()) as runtime:
            service = LifecycleService(runtime)
            async with local_client(service, tenant) as client:
                yield Session(client, None, "the cloud deployment", service)
        return
    if settings.profile == "test":
        async with _own(settings, tenant, purpose, graphs, None, command) as owned:
            yield owned
        return
    home = Path(settings.home)
    lock = StateLock(home)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OWNER_WAIT_S
    while True:
        if lock.acquire():
            try:
                async with _own(settings, tenant, purpose, graphs, lock, command) as owned:
                    yield owned
            finally:
                lock.release()
            return
        info = read_owner(home)
        if info is not None:
            client = TickrailClient(info.address, tenant=tenant)
            try:
                await client.list(page_size=1)  # does it answer?
            except Exception:
                await client.close()
            else:
                async with client:
                    yield Session(client, where=f"the owner, {describe(info)}")
                return
        if loop.time() >= deadline:
            raise OwnerError(
                f"the state directory {home} is owned by {describe(info)}, which does "
                f"not answer on its socket; wait for it to finish, or stop it"
            )
        await asyncio.sleep(0.05)  # an owner starting up, or a reader about to let go


@contextlib.asynccontextmanager
async def _own(
    settings: Settings,
    tenant: str,
    purpose: Purpose,
    graphs: Sequence[AgentGraph],
    lock: StateLock | None,
    command: str,
) -> AsyncIterator[Session]:
    """This process owns the state (``lock`` held, or in-memory state)."""
    if purpose is Purpose.READ:
        async with Runtime(settings, graphs, roles=(), watch=False) as runtime:
            service = LifecycleService(runtime)
            async with local_client(service, tenant) as client:
                yield Session(client, None, "this process (no owner was running)", service)
        return
    async with Runtime(settings, graphs) as runtime:
        owner = Owner(runtime, LifecycleService(runtime))
        owner.service.resolve_graph = resolve_from_labels
        owner.service.on_started = owner.started
        stop_listening = runtime.listen(None, owner.on_event)
        try:
            if purpose is Purpose.RUN and runtime.control_plane is not None:
                ids, extra = await orphaned_graphs(runtime.store, runtime.graphs)
                for graph in extra:
                    runtime.add_graph(graph)
                if ids:
                    await runtime.control_plane.recover(ids)
                    owner.recovered = ids
                    for lifetime_id in ids:
                        owner.started(lifetime_id)
                    log.warning(
                        "continuing %d lifetime(s) a previous owner left running: %s",
                        len(ids),
                        ", ".join(ids),
                    )
            async with (
                _serving(owner, lock, command),
                local_client(owner.service, tenant) as client,
            ):
                yield Session(client, owner, "this process", owner.service)
        finally:
            stop_listening()


@contextlib.asynccontextmanager
async def _serving(owner: Owner, lock: StateLock | None, command: str) -> AsyncIterator[None]:
    """Serve the lifecycle API on the owner socket."""
    from tickrail.services.api.auth import Authenticator
    from tickrail.services.api.server import serve_api

    servers = []
    try:
        if lock is not None:
            path = socket_path(lock.home)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a dead owner's socket: we hold the lock, so nobody uses it
            servers.append(
                await serve_api(
                    owner.service, address=f"unix:{path}", auth=Authenticator.local_socket()
                )
            )
            os.chmod(path, 0o600)
            lock.publish(owner_info(path, command))
        yield
    finally:
        for server in servers:
            await server.stop(2.0)
        if lock is not None:
            with contextlib.suppress(FileNotFoundError):
                socket_path(lock.home).unlink()
