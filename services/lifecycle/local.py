"""The in-process transport: a TickrailClient whose calls are method calls.

The same requests and responses as over gRPC, handed to the LifecycleService
in this process, so a command that owns the state (``tickrail run``, a console
in the same process) goes through exactly the code a remote caller does. The
caller's tenant is the request's: whoever holds this object is this process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from google.protobuf.message import Message

from tickrail.sdk.client import TickrailClient
from tickrail.sdk.errors import ConfigurationError
from tickrail.sdk.pb import lifecycle_pb2 as api

from .service import LifecycleService

_ResponseT = TypeVar("_ResponseT", bound=Message)

#: RPC name -> LifecycleService method (the same table the gRPC servicer serves).
UNARY = {
    "StartLifetime": "start",
    "GetLifetime": "get",
    "ListLifetimes": "list",
    "PauseLifetime": "pause",
    "ResumeLifetime": "resume",
    "AbortLifetime": "abort",
    "ReplayLifetime": "replay",
    "ForkLifetime": "fork",
    "GetUsage": "usage",
    "GetExecution": "execution",
}
#: Calls that wait on the control plane and take the caller's deadline.
TIMED = {"StartLifetime", "ForkLifetime"}


class LocalTransport:
    """``Transport`` over a LifecycleService in this process."""

    def __init__(self, service: LifecycleService) -> None:
        self.service = service

    async def unary(
        self, method: str, request: Message, response: type[_ResponseT], timeout: float | None
    ) -> _ResponseT:
        name = UNARY.get(method)
        if name is None:
            raise ConfigurationError(f"the lifecycle service has no call {method!r}")
        handler: Any = getattr(self.service, name)
        tenant = getattr(request, "tenant_id", "")
        if method in TIMED:
            reply = await handler(tenant, request, timeout=timeout)
        else:
            reply = await handler(tenant, request)
        assert isinstance(reply, response)
        return reply

    async def stream(
        self, method: str, request: Message, response: type[_ResponseT]
    ) -> AsyncIterator[_ResponseT]:
        if method != "WatchLifetime" or not isinstance(request, api.WatchLifetimeRequest):
            raise ConfigurationError(f"the lifecycle service has no stream {method!r}")
        async for event in self.service.watch(request.tenant_id, request):
            reply = api.WatchLifetimeResponse(event=event)
            assert isinstance(reply, response)
            yield reply

    async def close(self) -> None:
        return None


def local_client(service: LifecycleService, tenant: str) -> TickrailClient:
    """A TickrailClient for ``tenant`` whose calls run in this process."""
    return TickrailClient("in-process", tenant=tenant, transport=LocalTransport(service))
