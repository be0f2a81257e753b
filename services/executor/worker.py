"""The executor: consume node inputs, run Tasks and Plans, publish their envelopes.

Each input runs as its own asyncio task (bounded by ``concurrency``), so a
slow Task never holds up others. Attempts are retried per the node's Retry
policy; every attempt is published (failed ones as RETRYING), and the input
is committed only after its last envelope was accepted by the bus.

Task inputs and Plan inputs are read by separate consumer groups
(``{group}-tasks``, ``{group}-plans``), so restarting the executors of one kind
never stalls the other kind's partitions in a rebalance. A bus or blob store
that goes away is waited for (services/retry.py); the node is not run again
for it, only its envelope is published again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from tickrail.adapters import BlobStore, Consumer, EventBus, Message, Wakeable
from tickrail.sdk._envelope import execution_of, header_of
from tickrail.sdk._payload import DEFAULT_OFFLOAD_THRESHOLD
from tickrail.sdk.errors import AdapterError, EnvelopeError, TickrailError
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.node import Plan, Task
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services import tracing
from tickrail.services.consume import close_quietly, rejoin
from tickrail.services.metrics import Metrics
from tickrail.services.offload import offload_large
from tickrail.services.retry import (
    DEFAULT_BACKOFF,
    Backoff,
    Health,
    Stopped,
    dependency_of,
    pause,
    retrying,
)
from tickrail.services.topics import Topics, decode, publish_dead_letters

from ._batching import Batcher
from .outputs import OutputStream
from .run_node import Pools, attempt, choice_check, prepare, qualname

log = logging.getLogger("tickrail.executor")


class Executor:
    def __init__(
        self,
        bus: EventBus,
        blobs: BlobStore,
        topics: Topics,
        graphs: Iterable[AgentGraph],
        *,
        serve_tasks: bool = True,
        serve_plans: bool = True,
        concurrency: int = 1000,
        offload_threshold: int = DEFAULT_OFFLOAD_THRESHOLD,
        group: str = "tickrail-executor",
        metrics: Metrics | None = None,
        publish_linger: float = 0.0,
        commit_linger: float = 0.005,
        blocking_pool_size: int = 0,
        process_pool_size: int = 0,
        recorded_spec: Callable[[str], Awaitable[pb.GraphSpec | None]] | None = None,
        observe: Callable[[list[Message]], None] | None = None,
        health: Health | None = None,
        group_per_graph: bool = False,
    ) -> None:
        """``blocking_pool_size`` threads run plain ``def`` nodes (0: ``concurrency``);
        ``process_pool_size`` processes run ``pool = "process"`` Tasks (0: CPUs).
        ``recorded_spec(lifetime_id)`` reads the graph a lifetime was recorded
        with, to name what changed when code drifted from it.
        ``group_per_graph``: join a group of the graphs served
        (``{group}-{kind}-{graph ids}``), which reads every input and runs only
        those graphs' (the others are committed unrun: their own group runs them),
        so restarting the executors of one graph never stalls another's."""
        self.bus, self.blobs, self.topics = bus, blobs, topics
        self.observe = observe  # streamed output, handed to this process's watchers
        self.graphs = {g.graph_id: g for g in graphs}
        self.serve_tasks, self.serve_plans = serve_tasks, serve_plans
        self.offload_threshold = offload_threshold
        self.group = group
        self.group_per_graph = group_per_graph
        self.metrics = metrics or Metrics("executor")
        for graph in self.graphs.values():
            for name, node in graph.nodes.items():
                kind = "task" if isinstance(node, Task) else "plan"
                if serve_tasks if kind == "task" else serve_plans:
                    self.metrics.declare_node(graph.graph_id, name, kind)
        self.health = health or Health()
        self._slots = asyncio.Semaphore(concurrency)
        self._consumers: dict[str, Consumer] = {}
        # Consumers whose commit failed: their offsets are suspect, so the poll
        # loop leaves the group and joins again.
        self._broken: dict[int, AdapterError] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._by_lifetime: dict[str, set[asyncio.Task[None]]] = {}
        self._threads = ThreadPoolExecutor(
            max_workers=blocking_pool_size or concurrency, thread_name_prefix="tickrail-def"
        )
        self._process_pool_size = process_pool_size or os.cpu_count() or 1
        self._processes: ProcessPoolExecutor | None = None
        self._pools = Pools(self._threads, self._process_pool)
        self._checks = {g.graph_id: choice_check(g) for g in self.graphs.values()}
        self._recorded_spec = recorded_spec
        #: (graph id, recorded digest) -> '' when the code matches, else the refusal
        self._drift: dict[tuple[str, str], str] = {}
        # Envelopes and offset commits of concurrent inputs share requests
        # (see _batching): publishing gathers what is ready in one loop turn,
        # committing (off the critical path) waits a few ms for more.
        self._publishes: Batcher[Message] = Batcher(
            lambda batch: self.bus.publish(batch), linger=publish_linger
        )
        self._commits = Batcher(_commit_each, linger=commit_linger)

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:  # started on first use: spawning costs a second
            from .processes import open_process_pool

            self._processes = open_process_pool(self._process_pool_size)
        return self._processes

    def close_pools(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown(wait=False, cancel_futures=True)

    def _kinds(self) -> list[str]:
        return [k for k, on in (("tasks", self.serve_tasks), ("plans", self.serve_plans)) if on]

    async def _join(self, kind: str) -> Consumer:
        topic = "task-inputs" if kind == "tasks" else "plan-inputs"
        return await self.bus.subscribe(self.topics.every(topic), self.group_of(kind))

    def group_of(self, kind: str) -> str:
        """The consumer group this executor reads ``kind`` (tasks, plans) inputs in."""
        if not self.group_per_graph:
            return f"{self.group}-{kind}"
        return f"{self.group}-{kind}-{'+'.join(sorted(self.graphs))}"

    async def subscribe(self) -> None:
        for kind in self._kinds():
            self._consumers[kind] = await self._join(kind)

    def wakeup(self) -> None:
        """Cut a poll short (the in-process bus can), so a stop is prompt."""
        for consumer in self._consumers.values():
            if isinstance(consumer, Wakeable):
                consumer.wakeup()

    async def run(self, stopping: asyncio.Event, grace: float = 30.0) -> None:
        """Consume until ``stopping``; then let in-flight nodes finish within ``grace`` s."""
        if not self._consumers:
            await self.subscribe()
        try:
            async with asyncio.TaskGroup() as group:
                for kind in self._kinds():
                    group.create_task(self._consume(kind, stopping))
            if self._running:
                _, late = await asyncio.wait(self._running, timeout=grace)
                for task in late:
                    task.cancel()
                if late:
                    log.warning(
                        "cancelled %d node run(s) still going after %.0f s", len(late), grace
                    )
                    await asyncio.gather(*late, return_exceptions=True)
        finally:
            await self._publishes.drain()
            await self._commits.drain()
            for consumer in self._consumers.values():
                await close_quietly(consumer)
            self._consumers.clear()
            self.close_pools()

    async def _consume(
        self, kind: str, stopping: asyncio.Event, backoff: Backoff = DEFAULT_BACKOFF
    ) -> None:
        what = f"executor ({kind})"
        failures = 0
        try:
            while not stopping.is_set():
                try:
                    consumer = self._consumers.get(kind)
                    if consumer is None:
                        consumer = await rejoin(
                            functools.partial(self._join, kind),
                            what=what,
                            health=self.health,
                            stopping=stopping,
                        )
                        self._consumers[kind] = consumer
                    broken = self._broken.pop(id(consumer), None)
                    if broken is not None:
                        raise broken
                    messages = await consumer.poll(500, timeout=0.2)
                    self.metrics.report_lag(consumer)
                    await self.submit(messages, consumer)
                    if failures:
                        self.health.recovered("kafka")
                    failures = 0
                except AdapterError as exc:
                    if not exc.retriable:
                        raise
                    # Inputs in flight on the old member are redelivered to the new
                    # one; running them again yields the same exec ids (deduplicated).
                    self.metrics.inc("errors_total")
                    self.health.failing(dependency_of(exc), str(exc))
                    delay = backoff.delay(failures)
                    failures += 1
                    log.warning("%s: %s; rejoining in %.1f s", what, exc, delay)
                    dropped = self._consumers.pop(kind, None)
                    if dropped is not None:
                        self._broken.pop(id(dropped), None)
                        await close_quietly(dropped)
                    await pause(stopping, delay)
        except Stopped:
            pass

    async def submit(self, messages: list[Message], consumer: Consumer | None = None) -> None:
        """Start running these inputs; each is committed on ``consumer`` when done."""
        for message in messages:
            await self._slots.acquire()
            task = asyncio.create_task(self._handle(consumer, message))
            self._running.add(task)
            self._by_lifetime.setdefault(message.key, set()).add(task)
            # One callback (each is a loop callback of its own when the task ends).
            task.add_done_callback(functools.partial(self._forget, message.key))

    def _forget(self, lifetime_id: str, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        tasks = self._by_lifetime.get(lifetime_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._by_lifetime[lifetime_id]

    def cancel_lifetime(self, lifetime_id: str) -> int:
        """Stop this executor's node runs of a lifetime that is being aborted: their
        results could change nothing, and waiting for them would hold the abort up.
        Their inputs stay uncommitted; the control plane drops them if redelivered."""
        tasks = list(self._by_lifetime.get(lifetime_id, ()))
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def _handle(self, consumer: Consumer | None, message: Message) -> None:
        try:
            try:
                node_input = check_input(decode(pb.NodeInput, message))
                if self.group_per_graph and node_input.graph_id not in self.graphs:
                    pass  # another graph's: its own group's executors run it
                else:
                    # Inputs from a bus consumer share produce requests; inputs
                    # handed over in this process (consumer None) publish at once:
                    # batching an in-process hand-off only adds a loop turn and a task.
                    await self.execute(node_input, batch=consumer is not None)
            except AdapterError:
                raise
            except Exception as exc:
                # Undecodable, malformed, or a fault in our code on this one input:
                # dead-letter it and keep serving the others.
                if not isinstance(exc, EnvelopeError):
                    self.metrics.inc("errors_total")
                    log.exception("cannot run input on %s offset %s", message.topic, message.offset)
                await publish_dead_letters(self.bus, self.topics, [(message, str(exc))])
            if consumer is not None:
                try:
                    await self._commits.submit([(consumer, message)])
                except AdapterError as exc:
                    if not exc.retriable:
                        raise
                    self._broken[id(consumer)] = exc  # the poll loop rejoins
            self.metrics.inc("messages_processed_total")
        except asyncio.CancelledError:
            raise
        except Exception:
            # Publishing failed (the bus is down): leave the input uncommitted so it
            # is redelivered, and keep serving the others.
            self.metrics.inc("errors_total")
            log.exception("could not complete input on %s offset %s", message.topic, message.offset)
        finally:
            self._slots.release()

    async def execute(
        self, node_input: pb.NodeInput, *, batch: bool = False
    ) -> list[pb.ExecutionEnvelope]:
        """Run every attempt for one input and publish each envelope."""
        node = self._node_for(node_input)
        published: list[pb.ExecutionEnvelope] = []
        drift = "" if isinstance(node, str) else await self._drifted(node_input)
        if isinstance(node, str) or drift:
            reason, kind = (
                (drift, "GraphDriftError") if drift else (str(node), "ConfigurationError")
            )
            envelope = failed_before_running(node_input, reason, kind)
            await self._publish(envelope, batch)
            return [envelope]
        try:
            prepared = await retrying(
                lambda: prepare(node_input, self.blobs),
                what=f"executor: reading the input of {node_input.input_id}",
                health=self.health,
            )
        except TickrailError as exc:  # e.g. an upstream blob is missing or corrupt
            envelope = failed_before_running(
                node_input, f"cannot read the node's input: {exc}", qualname(exc)
            )
            await self._publish(envelope, batch)
            return [envelope]
        retry = node.retry
        stream = (
            OutputStream(node_input, self.topics.events(), self.bus.publish, self.observe)
            if isinstance(node, Task)
            else None
        )
        for attempt_no in range(1, retry.max_attempts + 1):
            last = attempt_no == retry.max_attempts
            with tracing.execution_span(node_input, attempt_no) as span:
                envelope, failed = await attempt(
                    node,
                    node_input,
                    prepared,
                    attempt_no,
                    not last,
                    check=self._checks.get(node_input.graph_id),
                    pools=self._pools,
                    outputs=stream.sink if stream is not None else None,
                )
                span.finish(envelope)
                if stream is not None:
                    await stream.drain()  # watchers see the output before the result
                await self._publish(envelope, batch)
            published.append(envelope)
            if not failed or last:
                break
            await asyncio.sleep(retry.delay(attempt_no))
        return published

    def _node_for(self, node_input: pb.NodeInput) -> Task | Plan | str:
        graph = self.graphs.get(node_input.graph_id)
        if graph is None:
            return f"this executor does not serve graph {node_input.graph_id!r}"
        if graph.version != node_input.graph_version:
            return (
                f"this executor serves {graph.graph_id}@{graph.version}, but the lifetime "
                f"runs version {node_input.graph_version}"
            )
        if node_input.name not in graph.nodes:
            return f"graph {graph.graph_id!r} has no node {node_input.name!r}"
        return graph.node(node_input.name)

    async def _drifted(self, node_input: pb.NodeInput) -> str:
        """'' if this code's graph is the one the lifetime recorded, else why not.

        Inputs carry the recorded structure's digest; only a mismatch costs a
        read of the recorded spec (to name the difference), once per digest.
        """
        graph = self.graphs[node_input.graph_id]
        recorded = node_input.graph_digest
        if not recorded or recorded == graph.digest:
            return ""
        key = (graph.graph_id, recorded)
        if key not in self._drift:
            from tickrail.sdk.drift import drift_message

            spec = None
            if self._recorded_spec is not None:
                spec = await self._recorded_spec(node_input.lifetime_id)
            if spec is not None:
                message = drift_message(spec, graph.spec)
            else:
                message = (
                    f"the code's graph {graph.graph_id}@{graph.version} has structure "
                    f"{graph.digest}, but this lifetime was recorded with {recorded} "
                    "(give changed code a new version, or run the code it started with)"
                )
            self._drift[key] = message
        return self._drift[key]

    async def _publish(self, envelope: pb.ExecutionEnvelope, batch: bool) -> None:
        """Publish one envelope, waiting out a bus or blob store outage: the node
        ran and its result must not be lost (nor the node run again for it)."""
        await retrying(
            lambda: self._send(envelope, batch),
            what=f"executor: publishing {header_of(envelope).exec_id}",
            health=self.health,
        )

    async def _send(self, envelope: pb.ExecutionEnvelope, batch: bool) -> None:
        await offload_large(envelope, self.blobs, self.offload_threshold)
        execution = execution_of(envelope)
        header = execution.header
        message = Message(
            self.topics.executions(header.tenant_id),
            header.lifetime_id,
            envelope.SerializeToString(),
            tracing.headers(),  # the execution's span: persist is its child
        )
        if batch:
            await self._publishes.submit([message])
        else:
            await self.bus.publish([message])
        self.metrics.observe_execution(
            header.graph_id,
            header.name,
            "task" if isinstance(execution, pb.TaskExecution) else "plan",
            header.status,
            execution.telemetry.latency_ms / 1000,
        )


async def _commit_each(items: list[tuple[Consumer, Message]]) -> None:
    """One commit per consumer for a batch of (consumer, input) pairs."""
    by_consumer: dict[int, tuple[Consumer, list[Message]]] = {}
    for consumer, message in items:
        by_consumer.setdefault(id(consumer), (consumer, []))[1].append(message)
    for consumer, messages in by_consumer.values():
        await consumer.commit(messages)


_TOKEN = re.compile(r"[0-9a-f]{64}")


def check_input(node_input: pb.NodeInput) -> pb.NodeInput:
    """The input, after checking what running it relies on (EnvelopeError if not).

    The executor cannot verify the dispatch token (it never holds the secret),
    but an input without a well-formed one cannot come from the control plane.
    """
    if not (
        node_input.input_id
        and node_input.lifetime_id
        and node_input.tenant_id
        and node_input.graph_id
        and node_input.name
    ):
        missing = [
            f
            for f in ("input_id", "lifetime_id", "tenant_id", "graph_id", "name")
            if not getattr(node_input, f)
        ]
        raise EnvelopeError(f"node input lacks {', '.join(missing)}")
    if node_input.kind not in (pb.NODE_KIND_TASK, pb.NODE_KIND_PLAN):
        raise EnvelopeError(f"node input {node_input.input_id!r} has no node kind")
    if not _TOKEN.fullmatch(node_input.dispatch_token):
        raise EnvelopeError(f"node input {node_input.input_id!r} has no dispatch token")
    return node_input


def failed_before_running(
    node_input: pb.NodeInput, reason: str, error_type: str
) -> pb.ExecutionEnvelope:
    """A FAILED envelope for an input that cannot run here, so the lifetime fails visibly."""
    header = pb.ExecutionHeader(
        name=node_input.name,
        exec_id=f"{node_input.input_id}.1",
        input_id=node_input.input_id,
        graph_id=node_input.graph_id,
        graph_version=node_input.graph_version,
        lifetime_id=node_input.lifetime_id,
        tenant_id=node_input.tenant_id,
        attempt=1,
        iteration=node_input.iteration,
        created_at=node_input.created_at,
        status=pb.EXECUTION_STATUS_FAILED,
        edge_taken=node_input.edge_taken,
        parent_exec_ids=node_input.parent_exec_ids,
        branch=node_input.branch,
        kind=node_input.kind,
        dispatch_token=node_input.dispatch_token,
    )
    if node_input.kind == pb.NODE_KIND_PLAN:
        return pb.ExecutionEnvelope(
            plan=pb.PlanExecution(
                header=header, result=pb.PlanResult(error=reason, error_type=error_type)
            )
        )
    return pb.ExecutionEnvelope(
        task=pb.TaskExecution(
            header=header, result=pb.TaskResult(error=reason, error_type=error_type)
        )
    )
