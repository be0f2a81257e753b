"""Fixtures for guardrail tests: policy files in tmp_path, envelopes, a MemoryKV."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tickrail.adapters.kv.memory import MemoryKV
from tickrail.sdk.pb import envelope_pb2

#: 2023-11-14T22:13:20Z: a fixed "now" for envelopes and clocks.
T0 = 1_700_000_000.0

WriteText = Callable[..., Path]
WriteRules = Callable[..., Path]
MakeEnvelope = Callable[..., envelope_pb2.ExecutionEnvelope]


@pytest.fixture
def write(tmp_path: Path) -> WriteText:
    """Write a policy file verbatim (dedented); for tests that check line numbers."""

    def write(text: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture
def rules_file(tmp_path: Path) -> WriteRules:
    """Write a policy file from rule dicts."""

    def rules_file(
        *rules: dict[str, Any],
        name: str = "policy.yaml",
        tenant: str | None = None,
        disable: list[str] | None = None,
    ) -> Path:
        document: dict[str, Any] = {"apiVersion": "tickrail/v1", "kind": "GuardrailPolicy"}
        if tenant is not None:
            document["tenant"] = tenant
        if disable is not None:
            document["disable"] = disable
        document["rules"] = list(rules)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    return rules_file


def rule(name: str, condition: str, **fields: Any) -> dict[str, Any]:
    """A rule dict with lifetime scope and ABORT_LIFETIME unless told otherwise."""
    return {
        "name": name,
        "scope": fields.pop("scope", "lifetime"),
        "condition": condition,
        "action": fields.pop("action", "ABORT_LIFETIME"),
        **fields,
    }


@pytest.fixture
def rule_dict() -> Callable[..., dict[str, Any]]:
    return rule


@pytest.fixture
def envelope() -> MakeEnvelope:
    """Make an ExecutionEnvelope; exec_ids are unique unless given."""
    counter = itertools.count(1)

    def make(
        name: str = "work",
        *,
        kind: str = "task",
        exec_id: str | None = None,
        lifetime_id: str = "lt-1",
        tenant_id: str = "acme",
        graph_id: str = "graph",
        attempt: int = 1,
        iteration: int = 1,
        status: int = envelope_pb2.EXECUTION_STATUS_SUCCEEDED,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: float = 0.0,
        latency_ms: float = 0.0,
        model: str = "",
        metrics: dict[str, float] | None = None,
        finished_at: float | None = T0,
    ) -> envelope_pb2.ExecutionEnvelope:
        header = envelope_pb2.ExecutionHeader(
            name=name,
            exec_id=exec_id or f"exec-{next(counter)}",
            graph_id=graph_id,
            lifetime_id=lifetime_id,
            tenant_id=tenant_id,
            attempt=attempt,
            iteration=iteration,
            status=status,  # type: ignore[arg-type]
            kind=envelope_pb2.NODE_KIND_PLAN if kind == "plan" else envelope_pb2.NODE_KIND_TASK,
        )
        if finished_at is not None:
            header.finished_at.seconds = int(finished_at)
            header.finished_at.nanos = int((finished_at % 1) * 1e9)
        telemetry = envelope_pb2.PolicyTelemetry(
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            model=model,
            metrics=metrics or {},
        )
        if kind == "plan":
            return envelope_pb2.ExecutionEnvelope(
                plan=envelope_pb2.PlanExecution(header=header, telemetry=telemetry)
            )
        return envelope_pb2.ExecutionEnvelope(
            task=envelope_pb2.TaskExecution(header=header, telemetry=telemetry)
        )

    return make


@pytest.fixture
async def kv() -> AsyncIterator[MemoryKV]:
    async with MemoryKV() as store:
        yield store
