"""ResumeLifetime: the shared resume rules, as the SDK's argument and state errors."""

from __future__ import annotations

from tickrail.sdk.errors import InvalidArgumentError, LifetimeStateError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.sdk.pb import lifecycle_pb2 as api
from tickrail.services.control_plane.commands import ResumeRefused
from tickrail.services.control_plane.commands import resume_command as _resume_command
from tickrail.services.control_plane.state import LifetimeState


def resume_command(state: LifetimeState, request: api.ResumeLifetimeRequest) -> pb.LifetimeResumed:
    """The LifetimeResumed to send, or InvalidArgumentError/LifetimeStateError saying why not."""
    try:
        return _resume_command(
            state,
            answer=request.input if request.HasField("input") else None,
            exec_id=request.exec_id,
            reason=request.reason or "resumed through the API",
        )
    except ResumeRefused as exc:
        if exc.field:
            raise InvalidArgumentError(exc.field, str(exc)) from exc
        raise LifetimeStateError(str(exc)) from exc
