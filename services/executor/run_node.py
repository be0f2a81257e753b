"""Run one node once: build its context, call user code, capture the outcome."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import time
from collections.abc import Callable
from concurrent.futures import Executor as PoolExecutor
from dataclasses import dataclass
from typing import Any

from tickrail.sdk._payload import BlobReader, encode, read_value
from tickrail.sdk._timestamps import stamp
from tickrail.sdk.context import (
    _NO_ANSWER,
    HumanInputRequired,
    NodeContext,
    OutputSink,
    PlanContext,
    TaskContext,
    Upstream,
    set_current,
)
from tickrail.sdk.decision import Finish, Next, as_decision
from tickrail.sdk.errors import NodeTimeoutError, RoutingError
from tickrail.sdk.node import Plan, Task
from tickrail.sdk.pb import envelope_pb2 as pb


@dataclass(slots=True)
class Prepared:
    """Inputs decoded once per node input, shared by every attempt."""

    value: Any
    upstream: list[Upstream]
    given: pb.Payload | None  # the payload ``value`` came from, when there is one
    human: Any = _NO_ANSWER  # a person's answer, when the node asked for one

    def forward(self) -> pb.Payload:
        """What a Plan passes to the Tasks it chooses when it gives them no input."""
        return self.given if self.given is not None else encode(self.value)


async def prepare(node_input: pb.NodeInput, blobs: BlobReader | None) -> Prepared:
    upstream = [
        Upstream(
            name=u.name,
            exec_id=u.exec_id,
            ok=u.status == pb.EXECUTION_STATUS_SUCCEEDED,
            value=await read_value(u.result.output, blobs, tenant=node_input.tenant_id),
            error=u.result.error,
            error_type=u.result.error_type,
            branch=u.branch[-1].index
            if node_input.edge_taken == pb.EDGE_KIND_JOIN and u.branch
            else None,
            send_id=u.send_id,
        )
        for u in node_input.upstream
    ]
    if node_input.kind == pb.NODE_KIND_TASK or not node_input.upstream:
        given = await read_value(node_input.input, blobs, tenant=node_input.tenant_id)
        prepared = Prepared(given, upstream, node_input.input)
        if node_input.answers_exec_id:
            prepared.human = await read_value(
                node_input.human_input, blobs, tenant=node_input.tenant_id
            )
        return prepared
    if len(upstream) == 1 and node_input.edge_taken != pb.EDGE_KIND_JOIN:
        return Prepared(upstream[0].value, upstream, node_input.upstream[0].result.output)
    return Prepared([u.value for u in upstream], upstream, None)


def qualname(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


#: Checks a Plan's choice against its graph: '' when legal, else the refusal.
ChoiceCheck = Callable[[str, pb.PlanResult], str]


@dataclass(frozen=True, slots=True)
class Pools:
    """Where plain ``def`` nodes run: threads (the default) or processes (``pool = "process"``)."""

    threads: PoolExecutor | None = None
    processes: Callable[[], PoolExecutor] | None = None


async def attempt(
    node: Task | Plan,
    node_input: pb.NodeInput,
    prepared: Prepared,
    attempt_no: int,
    will_retry_on_failure: bool,
    *,
    check: ChoiceCheck | None = None,
    pools: Pools | None = None,
    outputs: Callable[[str], OutputSink] | None = None,
) -> tuple[pb.ExecutionEnvelope, bool]:
    """Run one attempt; return its envelope and whether it failed (and may be retried).

    ``check`` refuses an illegal Plan choice as soon as the Plan returns it: the
    execution FAILS with the reason, and is not retried (the Plan would choose
    the same again). ``outputs(exec_id)`` gives the sink a Task's ``ctx.emit``
    streams to.
    """
    exec_id = f"{node_input.input_id}.{attempt_no}"
    fields: dict[str, Any] = dict(
        lifetime_id=node_input.lifetime_id,
        tenant_id=node_input.tenant_id,
        graph_id=node_input.graph_id,
        graph_version=node_input.graph_version,
        name=node_input.name,
        exec_id=exec_id,
        attempt=attempt_no,
        iteration=node_input.iteration,
        input=prepared.value,
        branch=node_input.branch[-1].index if node_input.branch else None,
        from_node=node_input.from_node,
    )
    is_task = isinstance(node, Task)
    ctx: NodeContext = (
        TaskContext(
            **fields,
            human_input=prepared.human,
            upstream=list(prepared.upstream),
            deps={u.send_id: u.value for u in prepared.upstream if u.send_id},
            output_sink=outputs(exec_id) if outputs is not None else None,
        )
        if is_task
        else PlanContext(**fields, upstream=list(prepared.upstream))
    )
    started_wall, started = time.time(), time.perf_counter()
    error: BaseException | None = None
    value: Any = None
    prompt = ""
    refused = False
    finish = False
    restore = set_current(ctx)  # for tickrail.llm and other helpers not handed ctx
    try:
        value = await _call(node, ctx, pools)
        if is_task:
            finish, value = _task_output(node.name, value)
        else:
            value = _plan_result(node_input, prepared, value)
            problem = check(node.name, value) if check is not None else ""
            if problem:
                refused = True
                raise RoutingError(problem)
    except HumanInputRequired as ask:
        if is_task:
            prompt = ask.prompt or "(no prompt)"
        else:
            error = TypeError("only a Task can ask a person for input (ctx.ask_human)")
    except TimeoutError:
        error = NodeTimeoutError(f"{node.name!r} ran past its timeout of {node.timeout} s")
    except Exception as exc:  # user code: any failure becomes a recorded FAILED execution
        error = exc
    finally:
        restore()
    latency_ms = (time.perf_counter() - started) * 1000
    if prompt:
        status = pb.EXECUTION_STATUS_WAITING
    elif error is None:
        status = pb.EXECUTION_STATUS_SUCCEEDED
    elif will_retry_on_failure and not refused:
        status = pb.EXECUTION_STATUS_RETRYING
    elif isinstance(error, NodeTimeoutError):
        status = pb.EXECUTION_STATUS_TIMED_OUT
    else:
        status = pb.EXECUTION_STATUS_FAILED
    # Built in place inside one envelope: constructing the parts separately and
    # passing them in would copy each nested message once more, on every step.
    envelope = pb.ExecutionEnvelope()
    execution = envelope.task if is_task else envelope.plan
    header = execution.header
    header.name = node_input.name
    header.exec_id = exec_id
    header.input_id = node_input.input_id
    header.graph_id = node_input.graph_id
    header.graph_version = node_input.graph_version
    header.lifetime_id = node_input.lifetime_id
    header.tenant_id = node_input.tenant_id
    header.attempt = attempt_no
    header.iteration = node_input.iteration
    header.created_at.CopyFrom(node_input.created_at)
    stamp(header.started_at, int(started_wall * 1e9))
    stamp(header.finished_at, int((started_wall + latency_ms / 1000) * 1e9))
    header.status = status
    header.edge_taken = node_input.edge_taken
    header.parent_exec_ids.extend(node_input.parent_exec_ids)
    header.branch.extend(node_input.branch)
    header.kind = node_input.kind
    header.from_node = node_input.from_node
    header.from_exec_id = node_input.from_exec_id
    header.dispatch_token = node_input.dispatch_token
    usage = ctx.usage
    telemetry = execution.telemetry
    telemetry.tokens_in = usage.tokens_in
    telemetry.tokens_out = usage.tokens_out
    telemetry.cost_usd = usage.cost_usd
    telemetry.latency_ms = latency_ms
    telemetry.model = usage.model
    if usage.metrics:
        telemetry.metrics.update(usage.metrics)
    error_text = "" if error is None else (str(error) or type(error).__name__)
    error_type = "" if error is None else qualname(error)
    if is_task:
        task_result = envelope.task.result
        task_result.error, task_result.error_type = error_text, error_type
        if prompt:
            task_result.human_prompt = prompt
        elif error is None:
            task_result.output.CopyFrom(value)
            task_result.finish = finish
    else:
        plan_result = envelope.plan.result
        if error is None:
            plan_result.CopyFrom(value)
        else:
            plan_result.error, plan_result.error_type = error_text, error_type
            plan_result.upstream.extend(node_input.upstream)
    return envelope, error is not None and not refused


def _task_output(name: str, value: Any) -> tuple[bool, pb.Payload]:
    """A Task's return value as (took Finish, payload)."""
    if isinstance(value, Finish):
        return True, encode(value.output)
    if isinstance(value, Next):
        raise TypeError(
            f"Task {name!r} returned {value!r}: a Task returns its result (or Finish(...) "
            "to take its FINAL edge); choosing what runs next is a Plan's job"
        )
    return False, encode(value)


async def _call(node: Task | Plan, ctx: NodeContext, pools: Pools | None = None) -> Any:
    method = node.run if isinstance(node, Task) else node.plan
    if type(node)._is_async:
        call = method(ctx)
    elif isinstance(node, Task) and node.pool == "process" and pools and pools.processes:
        call = _in_process(pools.processes(), node, ctx)
    else:
        # Like asyncio.to_thread, but on the executor's own pool (blocking_pool_size
        # threads), not the loop's default one (min(32, CPUs + 4) threads).
        loop = asyncio.get_running_loop()
        bound = functools.partial(contextvars.copy_context().run, method, ctx)
        call = loop.run_in_executor(pools.threads if pools else None, bound)
    if node.timeout is None:
        return await call
    async with asyncio.timeout(node.timeout):
        return await call


async def _in_process(pool: PoolExecutor, node: Task, ctx: NodeContext) -> Any:
    """Run a CPU-bound ``def`` Task in a worker process; bring its usage back."""
    from tickrail.services.executor.processes import run_in_child

    assert isinstance(ctx, TaskContext)
    answered = ctx.human_input is not _NO_ANSWER
    # The output sink is a closure over this process's bus: it does not pickle,
    # and a worker process has no bus; ctx.emit there streams nothing.
    portable = dataclasses.replace(ctx, output_sink=None)
    value, usage = await asyncio.get_running_loop().run_in_executor(
        pool, run_in_child, node, portable, answered
    )
    ctx.usage = usage
    return value


def _plan_result(node_input: pb.NodeInput, prepared: Prepared, value: Any) -> pb.PlanResult:
    decision = as_decision(value)
    result = pb.PlanResult(upstream=node_input.upstream)
    if isinstance(decision, Finish):
        result.finish = True
        result.output.CopyFrom(encode(decision.output))
        return result
    result.next_task_names.extend(decision.tasks)
    forwarded: pb.Payload | None = None
    for send in decision.sends:
        if send.has_input:
            payload = encode(send.input)
        else:
            forwarded = forwarded if forwarded is not None else prepared.forward()
            payload = forwarded
        result.sends.add(task=send.task, input=payload, id=send.id, after=send.after)
    return result


def choice_check(graph: Any) -> ChoiceCheck:
    """The check of a Plan's choice against ``graph`` (an AgentGraph)."""
    from tickrail.sdk.choice import choice_problem

    def check(plan: str, result: pb.PlanResult) -> str:
        edges, finals = graph.routes
        return choice_problem(
            plan,
            result,
            edges.get(plan, {}),
            has_final=plan in finals,
            max_fanout=graph.max_fanout,
        )

    return check
