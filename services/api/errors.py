"""Errors the lifecycle API raises on purpose, each naming the gRPC status it maps to.

The backend stays free of grpc: it raises ``ApiError`` (or one of the SDK's
errors) and ``tickrail.services.api.server`` turns each into a status code. The code is
kept as the name of a ``grpc.StatusCode`` member.
"""

from __future__ import annotations

from tickrail.sdk.errors import TickrailError


class ApiError(TickrailError):
    """A request the API refuses, with the gRPC status code to answer with."""

    code = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidArgument(ApiError):
    """A request field is missing or malformed; the message names the field."""

    code = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"


class PermissionDenied(ApiError):
    code = "PERMISSION_DENIED"


class NotFound(ApiError):
    """Something other than a lifetime is missing (an execution, for instance)."""

    code = "NOT_FOUND"


class FailedPrecondition(ApiError):
    """The lifetime is not in a state this call can act on."""

    code = "FAILED_PRECONDITION"


class AlreadyExists(ApiError):
    code = "ALREADY_EXISTS"


class Unimplemented(ApiError):
    code = "UNIMPLEMENTED"


class Unavailable(ApiError):
    code = "UNAVAILABLE"
