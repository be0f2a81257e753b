"""Read an execution envelope whichever kind (Task or Plan) it holds.

An ``ExecutionEnvelope`` wraps a ``TaskExecution`` or a ``PlanExecution``;
both carry a header and telemetry. Everything that only needs those reads
them through these helpers instead of switching on the oneof itself.
"""

from __future__ import annotations

from typing import Literal

from .errors import EnvelopeError
from .pb import envelope_pb2 as pb

Execution = pb.TaskExecution | pb.PlanExecution


def execution_of(envelope: pb.ExecutionEnvelope) -> Execution:
    """The Task or Plan execution inside; EnvelopeError when it holds neither."""
    which = envelope.WhichOneof("execution")
    if which == "task":
        return envelope.task
    if which == "plan":
        return envelope.plan
    raise EnvelopeError("execution envelope holds neither a task nor a plan")


def kind_of(envelope: pb.ExecutionEnvelope) -> Literal["task", "plan"]:
    """``"task"`` or ``"plan"``; EnvelopeError when it holds neither."""
    return "task" if isinstance(execution_of(envelope), pb.TaskExecution) else "plan"


def header_of(envelope: pb.ExecutionEnvelope) -> pb.ExecutionHeader:
    return execution_of(envelope).header


def telemetry_of(envelope: pb.ExecutionEnvelope) -> pb.PolicyTelemetry:
    return execution_of(envelope).telemetry
