"""The lifecycle API's tenancy and auth, health and reflection, and ``run_api_server``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tickrail.sdk.client import AuthenticationError, PermissionDeniedError, TickrailClient
from tickrail.sdk.errors import ConfigurationError, NotFoundError
from tickrail.sdk.pb import lifecycle_pb2 as api
from tickrail.sdk.pb import lifecycle_pb2_grpc as api_grpc
from tickrail.services.api import Authenticator, run_api_server, serve_api
from tickrail.services.api.auth import is_loopback
from tickrail.services.config import Settings
from tickrail.services.lifecycle import LifecycleService
from tickrail.services.runtime import Runtime

from .test_api import TOKENS, Served, code, events_of, graphs, run_to_end, served

SERVICE = "tickrail.v1.LifecycleService"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as s:
        yield s


# ---- tokens -------------------------------------------------------------------------


async def test_calls_without_a_valid_token_are_unauthenticated(stack: Served) -> None:
    for token in (None, "wrong-token-0123456789abcdef", TOKENS["acme"][:-1]):
        async with stack.client(token=token) as client:
            with pytest.raises(AuthenticationError) as refused:
                await client.list()
            assert code(refused.value) == grpc.StatusCode.UNAUTHENTICATED
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = api_grpc.LifecycleServiceStub(channel)
        request = api.ListLifetimesRequest(tenant_id="acme")
        for header in (f"Basic {TOKENS['acme']}", "Bearer ", "Bearer"):
            with pytest.raises(grpc.aio.AioRpcError) as raw:
                await stub.ListLifetimes(request, metadata=(("authorization", header),))
            assert raw.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # credentials are checked before the request: no hint about its validity
        with pytest.raises(grpc.aio.AioRpcError) as bare:
            await stub.ListLifetimes(api.ListLifetimesRequest())
        assert bare.value.code() == grpc.StatusCode.UNAUTHENTICATED
        authorized = (("authorization", f"Bearer {TOKENS['acme']}"),)
        with pytest.raises(grpc.aio.AioRpcError) as no_tenant:
            await stub.ListLifetimes(api.ListLifetimesRequest(), metadata=authorized)
        assert no_tenant.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tenant_id" in (no_tenant.value.details() or "")


async def test_one_tenants_token_never_reaches_another_tenants_lifetimes(stack: Served) -> None:
    async with stack.client("globex") as theirs, stack.client("acme") as ours:
        lifetime_id = await run_to_end(theirs, stack.graph("fan_out"))
        exec_id = (await theirs.get(lifetime_id)).executions[0].header.exec_id
        assert exec_id
        # acme's token, acme's tenant id, globex's lifetime
        attempts: list[Any] = [
            ours.get(lifetime_id),
            events_of(ours, lifetime_id),
            ours.pause(lifetime_id),
            ours.resume(lifetime_id),
            ours.abort(lifetime_id),
            ours.execution(exec_id),
            ours.usage(lifetime_id=lifetime_id),
            ours.replay(lifetime_id),
            ours.fork(lifetime_id, exec_id),
        ]
        # Refused exactly as an id that does not exist is, so ids cannot be probed.
        for attempt in attempts:
            with pytest.raises(NotFoundError) as denied:
                await attempt
            assert code(denied.value) == grpc.StatusCode.NOT_FOUND
            assert "globex" not in str(denied.value)
        with pytest.raises(NotFoundError) as missing:
            await ours.get("no-such-lifetime")
        assert str(missing.value).replace("no-such-lifetime", lifetime_id) == str(
            await _error_of(ours.get(lifetime_id))
        )
        assert [i.lifetime_id for i in (await ours.list()).lifetimes] == []
    # acme's token asking in globex's name
    async with TickrailClient(stack.address, tenant="globex", token=TOKENS["acme"]) as posing:
        for attempt in (posing.get(lifetime_id), posing.list(), events_of(posing, lifetime_id)):
            with pytest.raises(PermissionDeniedError):
                await attempt


async def _error_of(call: Any) -> BaseException:
    try:
        await call
    except Exception as exc:
        return exc
    raise AssertionError("the call succeeded")


def test_token_references_resolve_from_the_environment() -> None:
    env = {"TOKEN_ACME": "a" * 20, "TOKEN_GLOBEX": "g" * 20}
    auth = Authenticator.from_references({"acme": "TOKEN_ACME", "globex": "TOKEN_GLOBEX"}, env)
    assert auth.authorize([("authorization", "Bearer " + "g" * 20)], "globex") == "globex"
    with pytest.raises(ConfigurationError, match=r"\$TOKEN_MISSING \(the token of tenant 'x'\)"):
        Authenticator.from_references({"acme": "TOKEN_ACME", "x": "TOKEN_MISSING"}, env)
    with pytest.raises(ConfigurationError, match="share a token"):
        Authenticator.from_references({"acme": "TOKEN_ACME", "b": "TOKEN_ACME"}, env)
    with pytest.raises(ConfigurationError, match="shorter than 16"):
        Authenticator.from_references({"acme": "SHORT"}, {"SHORT": "abc"})
    with pytest.raises(ConfigurationError, match="at least one tenant"):
        Authenticator.from_references({}, env)


# ---- insecure mode --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1:50051", True),
        ("127.0.0.2:0", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("unix:/tmp/tickrail.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.1.2.3:50051", False),
        ("api.example.com:443", False),
    ],
)
def test_loopback_addresses(address: str, local: bool) -> None:
    assert is_loopback(address) is local


def test_insecure_mode_is_refused_off_loopback() -> None:
    with pytest.raises(ConfigurationError, match="only allowed on a loopback address"):
        Authenticator.insecure_on("0.0.0.0:50051")


async def test_run_api_server_refuses_insecure_mode_off_loopback(tmp_path: Path) -> None:
    settings = Settings(profile="test", home=str(tmp_path))
    with pytest.raises(ConfigurationError, match="loopback"):
        await run_api_server(settings, [], address="0.0.0.0:0", tokens=None, insecure=True)
    with pytest.raises(ConfigurationError, match="needs tenant tokens"):
        await run_api_server(settings, [], address="0.0.0.0:0", tokens=None, insecure=False)


async def test_insecure_mode_on_loopback_trusts_the_tenant_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(profile="test", home=str(tmp_path))
    async with Runtime(settings, graphs()) as runtime:
        auth = Authenticator.insecure_on("127.0.0.1:0")
        assert "WITHOUT AUTHENTICATION" in caplog.text
        server = await serve_api(LifecycleService(runtime), address="127.0.0.1:0", auth=auth)
        try:
            async with TickrailClient(f"127.0.0.1:{server.port}", tenant="anyone") as client:
                assert (await client.list()).lifetimes == []
        finally:
            await server.stop(None)


# ---- health, reflection, unimplemented ------------------------------------------------


async def test_health_reports_serving_without_credentials(stack: Served) -> None:
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await stack.api.set_serving(False)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_and_describes_the_service(stack: Served) -> None:
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
        ]
        replies = [r async for r in stub.ServerReflectionInfo(iter(requests))]
    listed = {s.name for s in replies[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= listed
    assert replies[1].file_descriptor_response.file_descriptor_proto  # lifecycle.proto and deps


async def test_a_port_already_served_is_refused_not_shared(stack: Served) -> None:
    with pytest.raises(ConfigurationError, match="cannot listen on"):
        await serve_api(stack.backend, address=stack.address, auth=Authenticator(TOKENS))


# ---- run_api_server ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_run_api_server_serves_until_sigterm_then_returns_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_TICKRAIL_TOKEN_ACME", TOKENS["acme"])
    address = f"127.0.0.1:{free_port()}"
    settings = Settings(profile="test", home=str(tmp_path))
    server = asyncio.create_task(
        run_api_server(
            settings,
            graphs(),
            address=address,
            tokens={"acme": "TEST_TICKRAIL_TOKEN_ACME"},
            insecure=False,
        )
    )
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service=SERVICE), wait_for_ready=True, timeout=10
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with TickrailClient(address, tenant="acme", token=TOKENS["acme"]) as client:
        graph = next(g for g in graphs() if g.graph_id == "fan_out")
        await run_to_end(client, graph)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(server, 15) == 0


async def test_run_api_server_names_a_missing_token_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_TICKRAIL_UNSET", raising=False)
    with pytest.raises(ConfigurationError, match=r"\$TEST_TICKRAIL_UNSET"):
        await run_api_server(
            Settings(profile="test", home=str(tmp_path)),
            [],
            address="127.0.0.1:0",
            tokens={"acme": "TEST_TICKRAIL_UNSET"},
            insecure=False,
        )
