"""The lifecycle API as a grpc.aio server, with health checking and reflection.

Each RPC authenticates the caller for the request's tenant, hands the request
to the ``LifecycleService`` (the one implementation of every operation) and
maps the SDK error it raises to a status code; nothing else happens here:

==========================================================  ====================
NotFoundError (a lifetime or execution, or another tenant's) NOT_FOUND
InvalidArgumentError (the message names the field)           INVALID_ARGUMENT
AuthenticationError (no token, an unknown token)             UNAUTHENTICATED
PermissionDeniedError (a request for another tenant)         PERMISSION_DENIED
LifetimeStateError, ConfigurationError, PolicyError          FAILED_PRECONDITION
AlreadyExistsError                                           ALREADY_EXISTS
UnavailableError, a retriable AdapterError                   UNAVAILABLE
BlobIntegrityError                                           DATA_LOSS
anything else                                                INTERNAL (logged)
==========================================================  ====================

The error's class name travels in the trailing metadata (``tickrail-error``),
so ``TickrailClient`` raises the very class the service raised. Details never
carry a traceback; INTERNAL answers carry an incident id that is also in the
server's log, next to the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tickrail.sdk.client import ERROR_KEY, FIELD_KEY
from tickrail.sdk.errors import (
    AdapterError,
    AlreadyExistsError,
    AuthenticationError,
    BlobIntegrityError,
    ConfigurationError,
    DefinitionError,
    EnvelopeError,
    ExecutionError,
    InvalidArgumentError,
    LifetimeStateError,
    NotFoundError,
    PermissionDeniedError,
    PolicyError,
    TickrailError,
)
from tickrail.sdk.pb import lifecycle_pb2 as api
from tickrail.sdk.pb import lifecycle_pb2_grpc as api_grpc
from tickrail.services.lifecycle.service import LifecycleService

from .auth import Authenticator

log = logging.getLogger("tickrail.api")

SERVICE_NAME: str = api.DESCRIPTOR.services_by_name["LifecycleService"].full_name
#: Large enough for a GetExecution result at the backend's limit, plus its envelope.
MAX_SEND_BYTES = 80 * 1024 * 1024


def status_for(exc: Exception) -> tuple[Any, str]:
    """The grpc.StatusCode and details to answer ``exc`` with."""
    code = grpc.StatusCode
    # Most specific first: several of these are ConfigurationErrors too.
    if isinstance(exc, NotFoundError):
        return code.NOT_FOUND, str(exc)
    if isinstance(exc, InvalidArgumentError):
        return code.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, AuthenticationError):
        return code.UNAUTHENTICATED, str(exc)
    if isinstance(exc, PermissionDeniedError):
        return code.PERMISSION_DENIED, str(exc)
    if isinstance(exc, AlreadyExistsError):
        return code.ALREADY_EXISTS, str(exc)
    if isinstance(exc, LifetimeStateError):
        return code.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, BlobIntegrityError):
        return code.DATA_LOSS, str(exc)
    if isinstance(exc, AdapterError) and exc.retriable:
        # Driver detail (hosts, SQL) stays in the log; the caller only needs to retry.
        return code.UNAVAILABLE, "a storage service is unavailable; retry later"
    if isinstance(exc, DefinitionError | EnvelopeError):
        return code.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, ConfigurationError | PolicyError | ExecutionError):
        return code.FAILED_PRECONDITION, str(exc)
    return code.INTERNAL, "internal error"


def _trailers(exc: Exception) -> tuple[tuple[str, str], ...]:
    """Name the SDK error class, so the client raises the same one."""
    if not isinstance(exc, TickrailError) or (
        isinstance(exc, AdapterError) and type(exc) is AdapterError
    ):
        return ()
    trailers = [(ERROR_KEY, type(exc).__name__)]
    if isinstance(exc, InvalidArgumentError):
        trailers.append((FIELD_KEY, exc.field))
    return tuple(trailers)


class _Call:
    """Around one RPC: turn whatever the handler raises into a status, and log it."""

    def __init__(self, context: Any, method: str) -> None:
        self.context = context
        self.method = method

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, grpc.aio.AbortError):
            return  # success, cancellation, or an abort already on its way
        code, details = status_for(exc)
        if code == grpc.StatusCode.INTERNAL:
            incident = uuid.uuid4().hex[:12]
            details = f"{details} (incident {incident}; see the server log)"
            log.error("%s failed [incident %s]", self.method, incident, exc_info=exc)
        elif code == grpc.StatusCode.UNAVAILABLE:
            log.warning("%s: %s", self.method, exc)
        else:
            log.debug("%s refused: %s %s", self.method, code.name, exc)
        trailers = () if code == grpc.StatusCode.INTERNAL else _trailers(exc)
        # raises: the RPC ends here
        await self.context.abort(code, details, trailing_metadata=trailers)


class LifecycleServicer(api_grpc.LifecycleServiceServicer):
    """Authenticates each call, then delegates to the lifecycle service."""

    def __init__(self, backend: LifecycleService, auth: Authenticator) -> None:
        self.backend = backend
        self.auth = auth

    def _tenant(self, tenant_id: str, context: Any) -> str:
        return self.auth.authorize(context.invocation_metadata() or (), tenant_id)

    async def StartLifetime(
        self, request: api.StartLifetimeRequest, context: Any
    ) -> api.StartLifetimeResponse:
        async with _Call(context, "StartLifetime"):
            tenant = self._tenant(request.tenant_id, context)
            return await self.backend.start(tenant, request, timeout=context.time_remaining())

    async def GetLifetime(
        self, request: api.GetLifetimeRequest, context: Any
    ) -> api.GetLifetimeResponse:
        async with _Call(context, "GetLifetime"):
            return await self.backend.get(self._tenant(request.tenant_id, context), request)

    async def ListLifetimes(
        self, request: api.ListLifetimesRequest, context: Any
    ) -> api.ListLifetimesResponse:
        async with _Call(context, "ListLifetimes"):
            return await self.backend.list(self._tenant(request.tenant_id, context), request)

    async def WatchLifetime(
        self, request: api.WatchLifetimeRequest, context: Any
    ) -> AsyncIterator[api.WatchLifetimeResponse]:
        async with _Call(context, "WatchLifetime"):
            tenant = self._tenant(request.tenant_id, context)
            async with contextlib.aclosing(self.backend.watch(tenant, request)) as events:
                async for event in events:
                    yield api.WatchLifetimeResponse(event=event)

    async def PauseLifetime(
        self, request: api.PauseLifetimeRequest, context: Any
    ) -> api.PauseLifetimeResponse:
        async with _Call(context, "PauseLifetime"):
            return await self.backend.pause(self._tenant(request.tenant_id, context), request)

    async def ResumeLifetime(
        self, request: api.ResumeLifetimeRequest, context: Any
    ) -> api.ResumeLifetimeResponse:
        async with _Call(context, "ResumeLifetime"):
            return await self.backend.resume(self._tenant(request.tenant_id, context), request)

    async def AbortLifetime(
        self, request: api.AbortLifetimeRequest, context: Any
    ) -> api.AbortLifetimeResponse:
        async with _Call(context, "AbortLifetime"):
            return await self.backend.abort(self._tenant(request.tenant_id, context), request)

    async def ReplayLifetime(
        self, request: api.ReplayLifetimeRequest, context: Any
    ) -> api.ReplayLifetimeResponse:
        async with _Call(context, "ReplayLifetime"):
            return await self.backend.replay(self._tenant(request.tenant_id, context), request)

    async def ForkLifetime(
        self, request: api.ForkLifetimeRequest, context: Any
    ) -> api.ForkLifetimeResponse:
        async with _Call(context, "ForkLifetime"):
            tenant = self._tenant(request.tenant_id, context)
            return await self.backend.fork(tenant, request, timeout=context.time_remaining())

    async def GetUsage(self, request: api.GetUsageRequest, context: Any) -> api.GetUsageResponse:
        async with _Call(context, "GetUsage"):
            return await self.backend.usage(self._tenant(request.tenant_id, context), request)

    async def GetExecution(
        self, request: api.GetExecutionRequest, context: Any
    ) -> api.GetExecutionResponse:
        async with _Call(context, "GetExecution"):
            return await self.backend.execution(self._tenant(request.tenant_id, context), request)


@dataclass(slots=True)
class ApiServer:
    """A started API server: the grpc.aio server, its bound port, its health service."""

    server: Any  # grpc.aio.Server
    port: int
    health: Any  # grpc_health.v1.health.aio.HealthServicer

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING (e.g. when a runtime role has died)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE_NAME):
            await self.health.set(service, status)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Tell health watchers, refuse new calls, give running ones ``grace`` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def serve_api(
    service: LifecycleService,
    *,
    address: str,
    auth: Authenticator,
    credentials: Any = None,
) -> ApiServer:
    """Start serving the lifecycle API of ``service`` (its runtime entered) on ``address``.

    ``address`` is ``host:port`` (port 0 picks a free one: see ``ApiServer.port``)
    or ``unix:/path`` (the embedded owner's socket).
    ``credentials`` (``grpc.ssl_server_credentials(...)``) serves TLS; without
    it the port is plaintext, for loopback or behind a TLS-terminating proxy.
    The caller stops the returned server (``await api.stop()``) before the
    runtime, and before its event loop closes.
    """
    receive = max(4 * 1024 * 1024, service.runtime.settings.offload_threshold + 1024 * 1024)
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.max_receive_message_length", receive),
            # gRPC defaults to SO_REUSEPORT: a second server on a busy port would
            # start "fine" and silently take half the connections.
            ("grpc.so_reuseport", 0),
        ]
    )
    servicer = LifecycleServicer(service, auth)
    api_grpc.add_LifecycleServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        await server.stop(None)
        raise ConfigurationError(f"cannot listen on {address}: {exc}") from exc
    await server.start()
    api_server = ApiServer(server=server, port=int(port), health=checker)
    await api_server.set_serving(True)
    log.info("lifecycle API listening on %s (port %d)", address, port)
    return api_server
