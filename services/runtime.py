"""Run roles in this process over the configured adapters.

The embedded profile runs every role (data plane, control plane, executor)
here; ``tickrail run`` and the tests use this. Shutdown order: stop consuming,
let in-flight node runs finish (grace period), then close adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

from adapters import (
    BlobStore,
    EventBus,
    KVStore,
    Message,
    StateStore,
    open_blob_store,
    open_bus,
    open_kv,
    open_store,
)
from sdk._payload import encode
from sdk.graph import AgentGraph
from sdk.pb import envelope_pb2 as pb
from services.config import Settings
from services.control_plane.service import ControlPlane, Guard
from services.data_plane.service import DataPlane
from services.executor.worker import Executor
from services.topics import Topics

log = logging.getLogger("tickrail.runtime")

STOPPING_KINDS = {"completed", "failed", "aborted", "paused"}
EventListener = Callable[[pb.LifetimeEvent], None]


def topics_for(settings: Settings) -> Topics:
    return Topics(settings.topic_prefix, settings.per_tenant_topics, tuple(settings.tenants))


class Runtime:
    """Adapters plus the roles named in ``roles``, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        graphs: Sequence[AgentGraph] = (),
        *,
        roles: Sequence[str] = ("data_plane", "control_plane", "executor"),
        guard: Guard | None = None,
    ) -> None:
        self.settings = settings.resolved()
        self.graphs = list(graphs)
        self.roles = tuple(roles)
        self.topics = topics_for(self.settings)
        self._guard = guard
        self._stack = contextlib.AsyncExitStack()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: list[asyncio.Task[None]] = []
        self._listeners: dict[str, list[EventListener]] = {}
        self._stops: dict[str, asyncio.Future[pb.LifetimeEvent]] = {}
        self.bus: EventBus
        self.store: StateStore
        self.blobs: BlobStore
        self.kv: KVStore
        self.control_plane: ControlPlane | None = None

    async def __aenter__(self) -> Self:
        s = self.settings
        try:
            self.bus = await self._stack.enter_async_context(open_bus(s.bus_url))
            self.store = await self._stack.enter_async_context(open_store(s.store_url))
            self.blobs = await self._stack.enter_async_context(open_blob_store(s.blob_url))
            self.kv = await self._stack.enter_async_context(open_kv(s.kv_url))
            await self.store.setup()
            await self.bus.ensure_topics(self.topics.all())
            await self._start_roles()
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._shutdown()

    async def _start_roles(self) -> None:
        s = self.settings
        # On the in-process bus nobody else could consume what one role hands the
        # next, so roles in this process call each other directly: the same
        # batches in the same order (after each commit), minus an event-loop hop.
        direct = s.bus_url.startswith("memory:")
        roles: list[Any] = []
        executor: Executor | None = None
        if "executor" in self.roles:
            executor = Executor(
                self.bus,
                self.blobs,
                self.topics,
                self.graphs,
                concurrency=s.executor_concurrency,
                offload_threshold=s.offload_threshold,
            )
            roles.append(executor)
        if "control_plane" in self.roles:
            guard = self._guard or self._policy_guard()
            self.control_plane = ControlPlane(
                self.bus,
                self.store,
                self.topics,
                guard=guard,
                forward_inputs=executor.submit if direct and executor is not None else None,
            )
            roles.append(self.control_plane)
        if "data_plane" in self.roles:
            plane = self.control_plane
            roles.append(
                DataPlane(
                    self.bus,
                    self.store,
                    self.blobs,
                    self.topics,
                    offload_threshold=s.offload_threshold,
                    downstream=plane if direct and plane is not None else None,
                )
            )
        # Subscribe every consumer before anything is published.
        for role in roles:
            await role.subscribe()
        watcher = await self.bus.subscribe(
            [self.topics.events()], f"tickrail-watch-{uuid.uuid4().hex}"
        )
        for role in roles:
            self._tasks.append(asyncio.create_task(self._run_role(role)))
        self._tasks.append(asyncio.create_task(self._watch(watcher)))

    def _policy_guard(self) -> Guard | None:
        """Guardrails from the ``policies`` setting, reloaded on change and on SIGHUP."""
        if not self.settings.policies:
            return None
        from services.control_plane.guardrails import Guardrails, PolicyWatcher

        watcher = PolicyWatcher(self.settings.policies)  # a bad file refuses to start
        self._background.append(asyncio.create_task(watcher.run()))
        self._tasks.append(self._background[-1])
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            watcher.install_sighup(asyncio.get_running_loop())  # main thread, Unix only
        return Guardrails(watcher, self.kv)

    async def _run_role(self, role: Any) -> None:
        if isinstance(role, Executor):
            await role.run(self._stopping, grace=self.settings.shutdown_grace_s)
        else:
            await role.run(self._stopping)

    async def _watch(self, consumer: Any) -> None:
        try:
            while not self._stopping.is_set():
                messages = await consumer.poll(1000, timeout=0.2)
                for message in messages:
                    event = pb.LifetimeEvent.FromString(message.value)
                    for listener in self._listeners.get(event.lifetime_id, ()):
                        listener(event)
                    kind = event.WhichOneof("kind")
                    stop = self._stops.get(event.lifetime_id)
                    if kind in STOPPING_KINDS and stop is not None and not stop.done():
                        stop.set_result(event)
                await consumer.commit(messages)
        finally:
            await consumer.close()

    async def _shutdown(self) -> None:
        self._stopping.set()
        if self._tasks:
            for task in self._background:
                task.cancel()  # the policy watcher polls forever
            results = await asyncio.gather(*self._tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    log.error("a role stopped with an error", exc_info=result)
            self._tasks.clear()
        await self._stack.aclose()

    # ---- lifetimes ----------------------------------------------------------

    async def start_lifetime(
        self,
        graph: AgentGraph,
        input: Any = None,
        *,
        tenant: str | None = None,
        labels: Mapping[str, str] | None = None,
        lifetime_id: str | None = None,
        on_event: EventListener | None = None,
    ) -> str:
        """Publish a start command; returns the new lifetime's id."""
        lifetime_id = lifetime_id or uuid.uuid4().hex[:20]
        tenant = tenant or self.settings.tenant
        self._stops[lifetime_id] = asyncio.get_running_loop().create_future()
        if on_event is not None:
            self._listeners.setdefault(lifetime_id, []).append(on_event)
        command = pb.LifetimeCommand(
            command_id=f"start-{lifetime_id}",
            lifetime_id=lifetime_id,
            tenant_id=tenant,
            start=pb.StartLifetime(
                lifetime_id=lifetime_id,
                tenant_id=tenant,
                graph=graph.spec,
                input=encode(input),
                labels=dict(labels or {}),
            ),
        )
        await self.send(command)
        return lifetime_id

    async def send(self, command: pb.LifetimeCommand) -> None:
        if command.lifetime_id not in self._stops:
            self._stops[command.lifetime_id] = asyncio.get_running_loop().create_future()
        await self.bus.publish(
            [Message(self.topics.commands(), command.lifetime_id, command.SerializeToString())]
        )

    def follow(self, lifetime_id: str, on_event: EventListener) -> None:
        self._listeners.setdefault(lifetime_id, []).append(on_event)
        self._stops.setdefault(lifetime_id, asyncio.get_running_loop().create_future())

    async def wait(self, lifetime_id: str, timeout: float | None = None) -> pb.LifetimeEvent:
        """Wait for the lifetime to complete, fail, abort or pause; return that event."""
        stop = self._stops.get(lifetime_id)
        if stop is None:
            stop = self._stops[lifetime_id] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(stop)
        finally:
            if stop.done():
                self._stops.pop(lifetime_id, None)
                self._listeners.pop(lifetime_id, None)

    def rearm(self, lifetime_id: str) -> None:
        """Wait again after a pause (e.g. before resuming)."""
        self._stops[lifetime_id] = asyncio.get_running_loop().create_future()
