"""Run roles in this process over the configured adapters.

The embedded profile runs every role (data plane, control plane, executor)
here; ``tickrail run`` and the tests use this, and each cloud role process is a
Runtime with one role. Shutdown order: the executor stops taking inputs and
lets in-flight node runs finish (grace period), then the data plane drains what
they published, then the control plane; adapters close last.

Roles are supervised: the first one that stops with an error (or stops
without being asked) is logged with its name, the others are stopped in the
same order, and every ``wait`` raises ``RoleFailedError`` naming it. Startup
gives up after ``start_timeout_s`` with ``StartupTimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Self, TypeVar

from tickrail.adapters import (
    BlobStore,
    Consumer,
    EventBus,
    KVStore,
    Message,
    MessageSizeLimit,
    StateStore,
    open_blob_store,
    open_bus,
    open_kv,
    open_store,
)
from tickrail.sdk._payload import encode
from tickrail.sdk.errors import (
    AdapterError,
    ConfigurationError,
    RoleFailedError,
    StartupTimeoutError,
)
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services import gc_tuning, logs, metrics, tracing
from tickrail.services.config import Settings
from tickrail.services.control_plane.service import ControlPlane, Guard
from tickrail.services.data_plane.service import DataPlane
from tickrail.services.dispatch import DispatchSigner, load_signer
from tickrail.services.executor.worker import Executor
from tickrail.services.retry import Health
from tickrail.services.topics import DecodedEvent, Topics

if TYPE_CHECKING:
    from tickrail.services.control_plane.guardrails import Guardrails

log = logging.getLogger("tickrail.runtime")

STOPPING_KINDS = {"completed", "failed", "aborted", "paused"}
ROLES = ("executor", "data_plane", "control_plane")  # also the shutdown order
EventListener = Callable[[pb.LifetimeEvent], None]
Role = Executor | DataPlane | ControlPlane
T = TypeVar("T")


def topics_for(settings: Settings) -> Topics:
    return Topics(settings.topic_prefix, settings.per_tenant_topics, tuple(settings.tenants))


class Runtime:
    """Adapters plus the roles named in ``roles``, started and stopped together.

    ``watch`` follows the events topic so ``wait`` and listeners work; role
    processes turn it off (they have nobody to tell).
    """

    def __init__(
        self,
        settings: Settings,
        graphs: Sequence[AgentGraph] = (),
        *,
        roles: Sequence[str] = ROLES,
        guard: Guard | None = None,
        watch: bool = True,
    ) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {', '.join(ROLES)}")
        self.settings = settings.resolved()
        self.graphs = list(graphs)
        self.roles = tuple(roles)
        self.topics = topics_for(self.settings)
        self.watch = watch
        self._guard = guard
        self._stack = contextlib.AsyncExitStack()
        self._running: dict[str, tuple[Role, asyncio.Event, asyncio.Task[None]]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._listeners: dict[str, list[EventListener]] = {}
        self._watchers: dict[str, list[EventListener]] = {}  # listen(): until stopped
        self._everything: list[EventListener] = []  # listen(None): every lifetime
        self._stops: dict[str, asyncio.Future[pb.LifetimeEvent]] = {}
        self.bus: EventBus
        self.store: StateStore
        self.blobs: BlobStore
        self.kv: KVStore
        self.control_plane: ControlPlane | None = None
        self._signer: DispatchSigner | None = None
        self._guardrails: Guardrails | None = None
        self.started = False
        self._phase = "not started"  # what startup is doing (named if it times out)
        self._failure: asyncio.Future[RoleFailedError] | None = None
        # Waits in unless_failed, woken when a role fails: one set, not one done
        # callback each on ``_failure`` (removing one of n callbacks costs O(n),
        # and 10,000 concurrent waits made every finished lifetime pay for that).
        self._failure_waits: set[asyncio.Future[None]] = set()
        self._stopping_roles: asyncio.Task[None] | None = None
        self.health = Health()  # dependencies the roles are waiting for (readiness)

    async def __aenter__(self) -> Self:
        s = self.settings
        logs.use_format(s.log_format)
        tracing.configure(
            "tickrail" if len(self.roles) != 1 else f"tickrail-{self.roles[0].replace('_', '-')}"
        )
        self._failure = asyncio.get_running_loop().create_future()
        self._failure.add_done_callback(self._wake_failure_waits)
        deadline = asyncio.timeout(self.settings.start_timeout_s)
        try:
            async with deadline:
                await self._start()
        except TimeoutError as exc:
            await self._shutdown()
            if deadline.expired():
                raise StartupTimeoutError(self.settings.start_timeout_s, self._phase) from exc
            raise
        except BaseException:  # SIGTERM during startup cancels us: clean up too
            await self._shutdown()
            raise
        self.started = True
        return self

    async def _start(self) -> None:
        s = self.settings
        self._phase = f"opening the bus ({_scheme(s.bus_url)})"
        self.bus = await self._stack.enter_async_context(open_bus(s.bus_url))
        self._phase = f"opening the store ({_scheme(s.store_url)})"
        self.store = await self._stack.enter_async_context(open_store(s.store_url))
        self._phase = f"opening the blob store ({_scheme(s.blob_url)})"
        self.blobs = await self._stack.enter_async_context(open_blob_store(s.blob_url))
        self._phase = f"opening the KV store ({_scheme(s.kv_url)})"
        self.kv = await self._stack.enter_async_context(open_kv(s.kv_url))
        self._check_message_limit()
        self._phase = "migrating the store"
        await self.store.setup()
        self._phase = "creating the topics"
        await self.bus.ensure_topics(self.topics.all())
        self._phase = "subscribing the roles"
        await self._start_roles()
        self._phase = "running"

    async def __aexit__(self, *exc: object) -> None:
        await self._shutdown()

    def _check_message_limit(self) -> None:
        """Inline payloads must fit in one bus message, with room for the envelope."""
        if not isinstance(self.bus, MessageSizeLimit):
            return  # no limit to respect
        limit = self.bus.max_message_bytes
        headroom = 64 * 1024
        if self.settings.offload_threshold + headroom > limit:
            raise ConfigurationError(
                f"offload_threshold {self.settings.offload_threshold} leaves no room under the "
                f"bus's max_message_bytes {limit}: set offload_threshold <= {limit - headroom} "
                "so large results go to the blob store instead of the bus"
            )

    @property
    def signer(self) -> DispatchSigner:
        """Signs the inputs this process dispatches (loaded on first use)."""
        if self._signer is None:
            s = self.settings
            self._signer = load_signer(s.dispatch_secret_env, s.profile, s.home)
        return self._signer

    def alive(self) -> bool:
        """Every role is still running (for readiness probes)."""
        return self.started and all(not task.done() for _, _, task in self._running.values())

    def metrics(self) -> bytes:
        """This process's metrics in the Prometheus text format (every role's series)."""
        return metrics.render()

    async def _start_roles(self) -> None:
        s = self.settings
        if self.roles:
            gc_tuning.tune()  # many live lifetimes: see services/gc_tuning.py
        # On the in-process bus nobody else could consume what one role hands the
        # next, so roles in this process call each other directly: the same
        # batches in the same order, and one transaction per step (see DataPlane).
        direct = s.bus_url.startswith("memory:")
        created: dict[str, Role] = {}
        if "executor" in self.roles:
            created["executor"] = Executor(
                self.bus,
                self.blobs,
                self.topics,
                self.graphs,
                group=self.topics.group("executor"),
                serve_tasks=s.executor_serves in ("all", "tasks"),
                serve_plans=s.executor_serves in ("all", "plans"),
                group_per_graph=s.executor_group_per_graph,
                concurrency=s.executor_concurrency,
                offload_threshold=s.offload_threshold,
                blocking_pool_size=s.blocking_pool_size,
                process_pool_size=s.process_pool_size,
                recorded_spec=self._recorded_spec,
                # Without a watcher on the bus (below), streamed output is handed over.
                observe=self._observe
                if direct and self.watch and "control_plane" in self.roles
                else None,
                health=self.health,
            )
        if "control_plane" in self.roles:
            executor = created.get("executor")
            self.control_plane = ControlPlane(
                self.bus,
                self.store,
                self.topics,
                signer=self.signer,
                guard=self._guard or self._policy_guard(),
                group=self.topics.group("control-plane"),
                observe=self._observe if direct and self.watch else None,
                forward_inputs=executor.submit
                if direct and isinstance(executor, Executor)
                else None,
                health=self.health,
            )
            created["control_plane"] = self.control_plane
            if self._guardrails is not None:
                # A KV without the aggregates (a fresh or restarted Redis, a new
                # process's memory) is refilled from the store before counting.
                self._guardrails.rebuild = self.control_plane.rebuild_aggregates
        if "data_plane" in self.roles:
            plane = self.control_plane
            created["data_plane"] = DataPlane(
                self.bus,
                self.store,
                self.blobs,
                self.topics,
                signer=self.signer,
                offload_threshold=s.offload_threshold,
                group=self.topics.group("data-plane"),
                downstream=_Named("control_plane", plane) if direct and plane is not None else None,
                health=self.health,
            )
        # Subscribe every consumer before anything is published.
        for role in created.values():
            await role.subscribe()
        watcher = None
        if self.watch and not (direct and self.control_plane is not None):
            group = self.topics.group(f"watch-{uuid.uuid4().hex}")
            # Watchers need what happens from now on; history is in the store.
            watcher = await self.bus.subscribe([self.topics.events()], group, from_end=True)
        for name, role in created.items():
            stopping = asyncio.Event()
            task = asyncio.create_task(self._run_role(role, stopping), name=f"tickrail-{name}")
            self._running[name] = (role, stopping, task)
            task.add_done_callback(partial(self._role_done, name, stopping))
        if watcher is not None:
            self._supervise("watcher", asyncio.create_task(self._watch(watcher)))

    async def _recorded_spec(self, lifetime_id: str) -> pb.GraphSpec | None:
        """The graph structure a lifetime was started with (to name a drift)."""
        records = await self.store.events(lifetime_id)
        if not records or records[0].kind != "started":
            return None
        return pb.LifetimeEvent.FromString(records[0].body).started.graph

    def _policy_guard(self) -> Guard | None:
        """Guardrails from the ``policies`` setting, reloaded on change and on SIGHUP."""
        if not self.settings.policies:
            return None
        from tickrail.services.control_plane.guardrails import Guardrails, PolicyWatcher

        watcher = PolicyWatcher(self.settings.policies)  # a bad file refuses to start
        self._supervise("policy_watcher", asyncio.create_task(watcher.run()))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            watcher.install_sighup(asyncio.get_running_loop())  # main thread, Unix only
        self._guardrails = Guardrails(watcher, self.kv)
        return self._guardrails

    # ---- supervision --------------------------------------------------------

    def _supervise(self, name: str, task: asyncio.Task[None]) -> None:
        """A helper task: it runs until shutdown, so ending early is a failure."""
        self._background.append(task)
        task.add_done_callback(partial(self._role_done, name, None))

    def _role_done(
        self, name: str, stopping: asyncio.Event | None, task: asyncio.Task[None]
    ) -> None:
        if task.cancelled() or (stopping is not None and stopping.is_set()):
            return  # asked to stop (an error while stopping is logged by _stop_roles)
        if self._stopping_roles is not None and stopping is None:
            return  # helpers are cancelled on the way out
        exc = task.exception()
        if isinstance(exc, RoleFailedError):
            error = exc  # raised on behalf of a role called directly (see _Named)
        else:
            error = RoleFailedError(name, exc or RuntimeError("it stopped without being asked"))
        log.error("%s; stopping the other roles", error, exc_info=exc)
        if self._failure is not None and not self._failure.done():
            self._failure.set_result(error)
        self._stop_roles()

    @property
    def phase(self) -> str:
        """What startup is doing ("running" once started), for /readyz and errors."""
        failure = self.failure
        return f"failed: {failure}" if failure is not None else self._phase

    @property
    def failure(self) -> RoleFailedError | None:
        """The first role failure, or None while every role runs."""
        failure = self._failure
        return failure.result() if failure is not None and failure.done() else None

    def _wake_failure_waits(self, _: object) -> None:
        waits, self._failure_waits = self._failure_waits, set()
        for woken in waits:
            _wake(woken)

    async def failed(self) -> RoleFailedError:
        """Wait until a role fails; returns its error (role processes wait on this)."""
        if self._failure is None:
            raise RuntimeError("the runtime is not started")
        return await asyncio.shield(self._failure)

    async def unless_failed(self, waiter: Awaitable[T]) -> T:
        """``waiter``'s result, unless a role fails first: then RoleFailedError.

        For anything that waits on this process's roles (``wait``, a watch), so
        that a dead role ends the wait at once with its name instead of a hang.
        """
        failure = self._failure
        task = asyncio.ensure_future(waiter)
        if failure is not None:
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            wake = partial(_wake, woken)
            task.add_done_callback(wake)
            self._failure_waits.add(woken)
            try:
                if not failure.done():
                    await woken
            finally:
                self._failure_waits.discard(woken)
                task.remove_done_callback(wake)
                answered = task.done()
                if not answered:
                    task.cancel()
            if not answered:
                error = failure.result()
                raise RoleFailedError(error.role, error.error) from error.error
        return await task

    async def _run_role(self, role: Role, stopping: asyncio.Event) -> None:
        if isinstance(role, Executor):
            await role.run(stopping, grace=self.settings.shutdown_grace_s)
        else:
            await role.run(stopping)

    async def _watch(self, consumer: Consumer) -> None:
        try:
            while True:
                messages = await consumer.poll(1000, timeout=0.2)
                self._observe(messages)
                await consumer.commit(messages)
        finally:
            await consumer.close()

    def _observe(self, messages: list[Message]) -> None:
        """Events from this process's control plane, handed over without the bus."""
        for message in messages:
            key = message.key
            if (
                self._everything
                or key in self._stops
                or key in self._listeners
                or (key in self._watchers)
            ):
                if isinstance(message, DecodedEvent) and message.event is not None:
                    self._deliver(message.event)  # from this process's control plane
                else:
                    self._deliver(pb.LifetimeEvent.FromString(message.value))

    def _deliver(self, event: pb.LifetimeEvent) -> None:
        lifetime_id = event.lifetime_id
        for listener in (
            *self._listeners.get(lifetime_id, ()),
            *self._watchers.get(lifetime_id, ()),
            *self._everything,
        ):
            listener(event)
        stop = self._stops.get(event.lifetime_id)
        if event.WhichOneof("kind") in STOPPING_KINDS and stop is not None and not stop.done():
            stop.set_result(event)

    def _stop_roles(self) -> asyncio.Task[None]:
        """Stop the roles in order, once (on shutdown, or when one of them failed)."""
        if self._stopping_roles is None:
            self._stopping_roles = asyncio.create_task(self._stop_in_order())
        return self._stopping_roles

    async def _stop_in_order(self) -> None:
        failed = self.failure
        for name in ROLES:
            if name not in self._running:
                continue
            role, stopping, task = self._running[name]
            stopping.set()
            # An in-process consumer can be woken instead of waiting out its poll.
            role.wakeup()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception as exc:
                    if failed is None or exc not in (failed, failed.error):
                        log.exception("the %s stopped with an error", name.replace("_", " "))
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _shutdown(self) -> None:
        if self._running or self._background:
            await asyncio.shield(self._stop_roles())
        self._running.clear()
        self._background.clear()
        await self._stack.aclose()
        tracing.flush()

    # ---- graphs and listeners -------------------------------------------------

    def add_graph(self, graph: AgentGraph) -> None:
        """Serve one more graph from now on (the embedded owner loads graphs that
        its clients name). A different version of a graph already served is refused."""
        for known in self.graphs:
            if known.graph_id == graph.graph_id:
                if known.version != graph.version:
                    raise ConfigurationError(
                        f"this process already runs {known.graph_id}@{known.version}; "
                        f"it cannot also run version {graph.version} (stop it first)"
                    )
                return
        self.graphs.append(graph)
        running = self._running.get("executor")
        if running is not None and isinstance(running[0], Executor):
            running[0].graphs[graph.graph_id] = graph

    def cancel_work(self, lifetime_id: str) -> int:
        """Cancel the node runs of ``lifetime_id`` that this process's executor has
        in flight (an abort need not wait for them); returns how many."""
        running = self._running.get("executor")
        if running is None or not isinstance(running[0], Executor):
            return 0
        return running[0].cancel_lifetime(lifetime_id)

    def listen(self, lifetime_id: str | None, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with each event of ``lifetime_id`` (every lifetime's, for
        None) as the control plane publishes it; returns the function that stops it.

        Events arrive after they are durable in the store, so a listener may read
        the store for them (with their seq) when woken.
        """
        if lifetime_id is None:
            self._everything.append(listener)
            return lambda: self._everything.remove(listener)
        listeners = self._watchers.setdefault(lifetime_id, [])
        listeners.append(listener)

        def stop() -> None:
            listeners.remove(listener)
            if not listeners and self._watchers.get(lifetime_id) is listeners:
                del self._watchers[lifetime_id]

        return stop

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
        """Call ``on_event`` for the lifetime's events; ``wait`` returns at the next stop."""
        self._listeners.setdefault(lifetime_id, []).append(on_event)
        self._stops[lifetime_id] = asyncio.get_running_loop().create_future()

    async def wait(self, lifetime_id: str, timeout: float | None = None) -> pb.LifetimeEvent:
        """Wait for the lifetime to complete, fail, abort or pause; return that event.

        Needs ``watch`` (events followed as they are published); front ends
        follow lifetimes through the lifecycle layer's ``watch`` instead.
        Raises RoleFailedError as soon as a role of this process fails (the
        lifetime cannot progress here any more).
        """
        if not self.watch:
            raise ConfigurationError("wait() needs a Runtime that watches events (watch=True)")
        stop = self._stops.get(lifetime_id)
        if stop is None:
            stop = self._stops[lifetime_id] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                return await self.unless_failed(asyncio.shield(stop))
        finally:
            if stop.done():
                self._stops.pop(lifetime_id, None)
                self._listeners.pop(lifetime_id, None)

    def rearm(self, lifetime_id: str) -> None:
        """Wait again after a pause (e.g. before resuming)."""
        self._stops[lifetime_id] = asyncio.get_running_loop().create_future()


def _wake(woken: asyncio.Future[None], _: object = None) -> None:
    if not woken.done():
        woken.set_result(None)


def _scheme(url: str) -> str:
    """The URL's scheme only: enough to say what is slow, and never a credential."""
    return url.partition(":")[0] or "?"


class _Named:
    """The control plane as the data plane's direct downstream (one process).

    Its errors then surface in the data plane's task; this keeps the name of
    the role they came from. Adapter errors pass unchanged (callers retry them).
    """

    def __init__(self, role: str, plane: ControlPlane) -> None:
        self.role, self.plane = role, plane

    async def decide(self, messages: list[Message]) -> Any:
        try:
            return await self.plane.decide(messages)
        except (AdapterError, RoleFailedError):
            raise
        except Exception as exc:
            raise RoleFailedError(self.role, exc) from exc

    async def publish(self, outgoing: Any) -> None:
        # try/except inline, not a contextmanager: this runs on every step.
        try:
            await self.plane.publish(outgoing)
        except (AdapterError, RoleFailedError):
            raise
        except Exception as exc:
            raise RoleFailedError(self.role, exc) from exc

    def forget(self, lifetime_ids: Iterable[str]) -> None:
        self.plane.forget(lifetime_ids)
