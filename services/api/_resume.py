"""ResumeLifetime: the shared resume rules, mapped to gRPC argument errors."""

from __future__ import annotations

from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.sdk.pb import lifecycle_pb2 as api
from tickrail.services.control_plane.commands import ResumeRefused
from tickrail.services.control_plane.commands import resume_command as _resume_command
from tickrail.services.control_plane.state import LifetimeState

from .errors import FailedPrecondition, InvalidArgument


def resume_command(state: LifetimeState, request: api.ResumeLifetimeRequest) -> pb.LifetimeResumed:
    """The LifetimeResumed to send, or InvalidArgument/FailedPrecondition saying why not."""
    try:
        return _resume_command(
            state,
            answer=request.input if request.HasField("input") else None,
            exec_id=request.exec_id,
            reason=request.reason or "resumed through the API",
        )
    except ResumeRefused as exc:
        if exc.field:
            raise InvalidArgument(exc.field, str(exc)) from exc
        raise FailedPrecondition(str(exc)) from exc
