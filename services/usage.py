"""GetUsage: sum recorded telemetry by tenant, lifetime, node or UTC day.

Every recorded attempt counts, retried ones included, because each spent
tokens. The sums are computed from the executions on each call; the
guardrails' running aggregates (KV store) are per rule scope, not per
grouping, so they cannot answer this directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tickrail.adapters import ExecutionRecord
from tickrail.sdk._envelope import execution_of
from tickrail.sdk.errors import InvalidArgumentError as InvalidArgument
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.sdk.pb import lifecycle_pb2 as api


@dataclass(slots=True)
class _Sums:
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    executions: int = 0


def _key(
    group_by: int, record: ExecutionRecord, execution: pb.TaskExecution | pb.PlanExecution
) -> str:
    header = execution.header
    if group_by in (api.USAGE_GROUPING_UNSPECIFIED, api.USAGE_GROUPING_TENANT):
        return record.tenant_id
    if group_by == api.USAGE_GROUPING_LIFETIME:
        return record.lifetime_id
    if group_by == api.USAGE_GROUPING_NODE:
        return f"{header.graph_id}/{header.name}"
    if group_by == api.USAGE_GROUPING_DAY:
        created = (
            header.created_at.ToNanoseconds() / 1e9
            if header.HasField("created_at")
            else record.created_at
        )
        return datetime.fromtimestamp(created, UTC).date().isoformat()
    raise InvalidArgument("group_by", f"unknown grouping {group_by}")


def usage_rows(records: Iterable[ExecutionRecord], group_by: int) -> list[api.UsageRow]:
    """One row per key, sorted by key."""
    if group_by not in api.UsageGrouping.values():
        raise InvalidArgument("group_by", f"unknown grouping {group_by}")
    sums: dict[str, _Sums] = {}
    for record in records:
        envelope = pb.ExecutionEnvelope.FromString(record.envelope)
        execution = execution_of(envelope)
        row = sums.setdefault(_key(group_by, record, execution), _Sums())
        telemetry = execution.telemetry
        row.tokens_in += telemetry.tokens_in
        row.tokens_out += telemetry.tokens_out
        row.cost_usd += telemetry.cost_usd
        row.executions += 1
    return [
        api.UsageRow(
            key=key,
            tokens_in=s.tokens_in,
            tokens_out=s.tokens_out,
            cost_usd=s.cost_usd,
            executions=s.executions,
        )
        for key, s in sorted(sums.items())
    ]
