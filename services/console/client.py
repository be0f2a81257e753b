"""What the console needs of the lifecycle layer: TickrailClient's methods, one tenant each.

The console never reads the store or the bus itself. Every page and endpoint
goes through an object with these methods (``tickrail.sdk.client.TickrailClient``
over whatever transport the lifecycle layer offers), acting for the tenant the
request was authenticated as, so tenancy is enforced where it is for every
other caller, and the console only adds its own front door (``auth.py``).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the SDK's result types; importing them at run time needs grpc
    from tickrail.sdk.client import (
        ExecutionResult,
        LifetimeDetail,
        LifetimePage,
        ReplayResult,
        UsageRow,
    )
    from tickrail.sdk.pb import envelope_pb2 as pb


class LifecycleClient(Protocol):
    """The subset of ``TickrailClient`` the console calls (same names, same results)."""

    tenant: str

    async def get(self, lifetime_id: str) -> LifetimeDetail: ...

    async def list(
        self,
        *,
        graph_id: str = "",
        status: str | None = None,
        started_after: Any = None,
        started_before: Any = None,
        page_size: int = 50,
        page_token: str = "",
    ) -> LifetimePage: ...

    def watch(
        self, lifetime_id: str, *, after_seq: int = 0, follow_forever: bool = False
    ) -> AsyncIterator[pb.LifetimeEvent]: ...

    async def pause(self, lifetime_id: str, *, reason: str = "") -> str: ...

    async def resume(
        self,
        lifetime_id: str,
        *,
        input: Any = None,
        exec_id: str | None = None,
        reason: str = "",
    ) -> str: ...

    async def abort(self, lifetime_id: str, *, reason: str = "") -> str: ...

    async def replay(self, lifetime_id: str, *, rerun_plans: bool = False) -> ReplayResult: ...

    async def fork(self, lifetime_id: str, from_exec_id: str, *, result: Any = ...) -> str: ...

    async def usage(
        self, *, lifetime_id: str | None = None, group_by: str = "tenant"
    ) -> builtins.list[UsageRow]: ...

    async def execution(self, exec_id: str) -> ExecutionResult: ...


#: The client acting for one tenant (the caller caches them; one per tenant).
ClientFor = Callable[[str], LifecycleClient]
