"""Run one node once: build its context, call user code, capture the outcome."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from tickrail.sdk._payload import BlobReader, encode, read_value
from tickrail.sdk.context import (
    _NO_ANSWER,
    HumanInputRequired,
    NodeContext,
    PlanContext,
    TaskContext,
    Upstream,
)
from tickrail.sdk.decision import Finish, as_decision
from tickrail.sdk.errors import NodeTimeoutError
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
            value=await read_value(u.result.output, blobs),
            error=u.result.error,
            error_type=u.result.error_type,
            branch=u.branch[-1].index
            if node_input.edge_taken == pb.EDGE_KIND_JOIN and u.branch
            else None,
        )
        for u in node_input.upstream
    ]
    if node_input.kind == pb.NODE_KIND_TASK or not node_input.upstream:
        prepared = Prepared(await read_value(node_input.input, blobs), upstream, node_input.input)
        if node_input.answers_exec_id:
            prepared.human = await read_value(node_input.human_input, blobs)
        return prepared
    if len(upstream) == 1 and node_input.edge_taken != pb.EDGE_KIND_JOIN:
        return Prepared(upstream[0].value, upstream, node_input.upstream[0].result.output)
    return Prepared([u.value for u in upstream], upstream, None)


def qualname(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


async def attempt(
    node: Task | Plan,
    node_input: pb.NodeInput,
    prepared: Prepared,
    attempt_no: int,
    will_retry_on_failure: bool,
) -> tuple[pb.ExecutionEnvelope, bool]:
    """Run one attempt; return its envelope and whether it failed."""
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
    )
    is_task = isinstance(node, Task)
    ctx: NodeContext = (
        TaskContext(**fields, human_input=prepared.human)
        if is_task
        else PlanContext(**fields, upstream=list(prepared.upstream))
    )
    started_wall, started = time.time(), time.perf_counter()
    error: BaseException | None = None
    value: Any = None
    prompt = ""
    try:
        value = await _call(node, ctx)
        value = encode(value) if is_task else _plan_result(node_input, prepared, value)
    except HumanInputRequired as ask:
        if is_task:
            prompt = ask.prompt or "(no prompt)"
        else:
            error = TypeError("only a Task can ask a person for input (ctx.ask_human)")
    except TimeoutError:
        error = NodeTimeoutError(f"{node.name!r} ran past its timeout of {node.timeout} s")
    except Exception as exc:  # user code: any failure becomes a recorded FAILED execution
        error = exc
    latency_ms = (time.perf_counter() - started) * 1000
    if prompt:
        status = pb.EXECUTION_STATUS_WAITING
    elif error is None:
        status = pb.EXECUTION_STATUS_SUCCEEDED
    elif will_retry_on_failure:
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
    header.started_at.FromNanoseconds(int(started_wall * 1e9))
    header.finished_at.FromNanoseconds(int((started_wall + latency_ms / 1000) * 1e9))
    header.status = status
    header.edge_taken = node_input.edge_taken
    header.parent_exec_ids.extend(node_input.parent_exec_ids)
    header.branch.extend(node_input.branch)
    header.kind = node_input.kind
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
    else:
        plan_result = envelope.plan.result
        if error is None:
            plan_result.CopyFrom(value)
        else:
            plan_result.error, plan_result.error_type = error_text, error_type
            plan_result.upstream.extend(node_input.upstream)
    return envelope, error is not None


async def _call(node: Task | Plan, ctx: NodeContext) -> Any:
    method = node.run if isinstance(node, Task) else node.plan
    call = method(ctx) if type(node)._is_async else asyncio.to_thread(method, ctx)
    if node.timeout is None:
        return await call
    async with asyncio.timeout(node.timeout):
        return await call


def _plan_result(node_input: pb.NodeInput, prepared: Prepared, value: Any) -> pb.PlanResult:
    decision = as_decision(value)
    result = pb.PlanResult(upstream=node_input.upstream)
    if isinstance(decision, Finish):
        result.finish = True
        result.output.CopyFrom(encode(decision.output))
        return result
    result.next_task_names.extend(decision.tasks)
    for name in decision.tasks:
        payload = encode(decision.inputs[name]) if name in decision.inputs else prepared.forward()
        result.task_inputs[name].CopyFrom(payload)
    return result
