"""Fork a lifetime from any execution: keep the recorded prefix, continue live.

The new lifetime gets a ``started`` event naming where it came from and a
copy of the original's log up to the chosen execution (ids rewritten to its
own; blobs are shared, not copied). Which recorded executions it keeps:

- every execution routed before the chosen one (the prefix), as recorded;
- the final executions (with their failed attempts) of nodes that were
  running at the fork point, in other parallel branches, even when they
  finished after the chosen execution: they do not depend on it, so they are
  not run again and spend no tokens twice. ``rerun_finished_branches=True``
  runs those nodes again instead;
- not the chosen execution, nor anything after it that depends on it.

Then the fork continues live: with a replacement result, the chosen Task's
execution is recorded with that result and routed; without one, the chosen
node runs again (restarting a FAILED lifetime from its failed node is this
case). Nodes still running at the fork point with nothing recorded yet run
again, and so does a node that waited for a person there (it asks again).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtoMessage

from tickrail.adapters import Message, NewEvent
from tickrail.sdk._envelope import execution_of, kind_of
from tickrail.sdk.errors import ConfigurationError, LifetimeNotFoundError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.data_plane.service import execution_row
from tickrail.services.runtime import Runtime

from .projection import event_time, rebuild
from .state import FINAL_STATUSES

ProtoMessageT = TypeVar("ProtoMessageT", bound=ProtoMessage)


async def fork_lifetime(
    runtime: Runtime,
    lifetime_id: str,
    from_exec_id: str,
    *,
    result: pb.Payload | None = None,
    rerun_finished_branches: bool = False,
) -> str:
    """Create the fork and set it going; returns the new lifetime's id.

    ``rerun_finished_branches`` runs again the other branches' nodes that
    were running at the fork point and finished later in the original,
    instead of keeping their recorded executions (see the module docstring).
    """
    store = runtime.store
    records = await store.events(lifetime_id)
    if not records:
        raise LifetimeNotFoundError(f"no lifetime {lifetime_id!r} is recorded")
    events = [pb.LifetimeEvent.FromString(r.body) for r in records]
    executions = {
        r.exec_id: pb.ExecutionEnvelope.FromString(r.envelope)
        for r in await store.executions(lifetime_id)
    }
    chosen = executions.get(from_exec_id)
    if chosen is None:
        raise LifetimeNotFoundError(f"lifetime {lifetime_id} has no execution {from_exec_id!r}")
    if result is not None and kind_of(chosen) != "task":
        raise ConfigurationError(
            f"{from_exec_id} is a Plan: only a Task's result can be replaced "
            "(fork without a result to run the Plan again)"
        )
    cut = history_length(events, from_exec_id)
    if cut is None:
        raise ConfigurationError(
            f"{from_exec_id} was never routed (it arrived after the lifetime ended)"
        )

    new_id = uuid.uuid4().hex[:20]
    prefix = [_renamed(e, lifetime_id, new_id) for e in events[:cut]]
    prefix[0].started.forked_from_lifetime = lifetime_id
    prefix[0].started.forked_from_exec = from_exec_id
    kept = {x for e in events[:cut] for x in _exec_ids(e)}
    copies = {
        _rename_id(x, lifetime_id, new_id): _renamed(executions[x], lifetime_id, new_id)
        for x in executions
        if x in kept
    }
    state = rebuild(prefix, copies)
    assert state is not None  # the prefix starts with the original's started event
    if state.terminal:
        raise ConfigurationError(f"the lifetime had already ended before {from_exec_id}")

    await store.append_executions(
        [execution_row(execution_of(e).header, e.SerializeToString()) for e in copies.values()]
    )
    await store.append_events(
        [
            NewEvent(
                event_id=e.event_id,
                lifetime_id=new_id,
                tenant_id=state.tenant_id,
                graph_id=state.graph_id,
                kind=e.WhichOneof("kind") or "",
                status=state.status,
                created_at=event_time(e),
                body=e.SerializeToString(),
            )
            for e in prefix
        ]
    )

    replaced = _renamed(chosen, lifetime_id, new_id)
    rerun = replaced.task.header.input_id or replaced.plan.header.input_id
    out: list[Message] = []
    topics = runtime.topics
    if result is not None:
        task = replaced.task
        task.result.CopyFrom(pb.TaskResult(output=result))
        task.header.status = pb.EXECUTION_STATUS_SUCCEEDED
        pending = state.pending.get(task.header.input_id)
        if pending is not None:  # it answers the fork's own open input: sign it as such
            task.header.dispatch_token = runtime.signer.token(pending)
        out.append(
            Message(topics.executions(state.tenant_id), new_id, replaced.SerializeToString())
        )
    finished = {} if rerun_finished_branches else _finished_attempts(executions, kept)
    asked = {i.input_id for i in state.waiting.values()}
    for node_input in state.pending.values():
        if node_input.input_id in asked or (node_input.input_id == rerun and result is not None):
            continue
        recorded = finished.get(_rename_id(node_input.input_id, new_id, lifetime_id))
        if recorded and node_input.input_id != rerun:
            # It ran in another branch and finished in the original: keep what it produced.
            out.extend(
                Message(
                    topics.executions(state.tenant_id),
                    new_id,
                    _signed(runtime, _renamed(e, lifetime_id, new_id)).SerializeToString(),
                )
                for e in recorded
            )
            continue
        out.append(
            Message(
                topics.inputs(node_input.kind, state.tenant_id),
                new_id,
                runtime.signer.signed(node_input),
            )
        )
    await runtime.bus.publish(out)
    return new_id


def history_length(events: list[pb.LifetimeEvent], from_exec_id: str) -> int | None:
    """How many of the original's events a fork from ``from_exec_id`` copies: all
    before the first that routes it (None if it was never routed). The fork's
    own events follow them in its log."""
    return next((i for i, e in enumerate(events) if from_exec_id in _exec_ids(e)), None)


def _finished_attempts(
    executions: dict[str, pb.ExecutionEnvelope], kept: set[str]
) -> dict[str, list[pb.ExecutionEnvelope]]:
    """Input id -> its not-yet-kept attempts, in order, for inputs whose last one is final."""
    by_input: dict[str, list[pb.ExecutionEnvelope]] = {}
    for envelope in executions.values():
        by_input.setdefault(execution_of(envelope).header.input_id, []).append(envelope)
    out = {}
    for input_id, attempts in by_input.items():
        attempts.sort(key=lambda e: execution_of(e).header.attempt)
        if execution_of(attempts[-1]).header.status in FINAL_STATUSES:
            out[input_id] = [e for e in attempts if execution_of(e).header.exec_id not in kept]
    return out


def _signed(runtime: Runtime, envelope: pb.ExecutionEnvelope) -> pb.ExecutionEnvelope:
    """A recorded execution re-published for the fork: it answers the fork's own open
    input, so it carries that input's dispatch token (stored envelopes carry none)."""
    header = execution_of(envelope).header
    header.dispatch_token = runtime.signer.token_of(header)
    return envelope


def _exec_ids(event: pb.LifetimeEvent) -> Iterator[str]:
    kind = event.WhichOneof("kind")
    exec_id = getattr(getattr(event, kind), "exec_id", "") if kind else ""
    if exec_id:
        yield exec_id


def _rename_id(value: str, old: str, new: str) -> str:
    return value.replace(old, new)


def _renamed(message: ProtoMessageT, old: str, new: str) -> ProtoMessageT:
    """A copy with the lifetime id rewritten in every id-bearing string field.

    Blob URIs keep the original id: the fork shares the stored blobs.
    Payload bytes are data, never rewritten.
    """
    copy = type(message)()
    copy.CopyFrom(message)
    _rewrite(copy, old, new)
    return copy


def _rewrite(message: ProtoMessage, old: str, new: str) -> None:
    for field, value in message.ListFields():
        if field.name == "uri":
            continue
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value[:] = [v.replace(old, new) for v in value]
            else:
                setattr(message, field.name, value.replace(old, new))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                continue  # labels and task inputs: keyed by names, not ids
            for item in value if field.is_repeated else [value]:
                _rewrite(item, old, new)
