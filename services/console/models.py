"""The JSON API's request and response shapes (they are the OpenAPI document's schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """Every error answer: what went wrong, in words."""

    detail: str


class LifetimeOut(BaseModel):
    lifetime_id: str
    tenant_id: str
    graph_id: str
    status: str = Field(description="RUNNING, PAUSED, COMPLETED, FAILED or ABORTED")
    started_at: datetime
    updated_at: datetime
    duration_s: float = Field(description="until the last event, or until now while it runs")
    events: int
    tokens: int | None = Field(None, description="tokens in + out, every attempt counted")
    cost_usd: float | None = None
    executions: int | None = None


class LifetimeListOut(BaseModel):
    lifetimes: list[LifetimeOut]
    next_page_token: str = Field(description="pass as page_token for the next page; empty: last")


class PayloadOut(BaseModel):
    content_type: str
    size: int
    offloaded: bool = Field(description="kept in the blob store rather than inline")
    value: Any = Field(None, description="decoded: JSON data or text; absent when offloaded")
    sha256: str = ""


class BranchOut(BaseModel):
    fanout_id: str
    index: int
    width: int


class TelemetryOut(BaseModel):
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float
    model: str
    metrics: dict[str, float]


class ExecutionOut(BaseModel):
    exec_id: str
    seq: int
    kind: str = Field(description="task or plan")
    name: str
    status: str = Field(description="SUCCEEDED, FAILED, RETRYING, TIMED_OUT or WAITING")
    attempt: int
    iteration: int
    input_id: str
    edge_taken: str
    parent_exec_ids: list[str]
    branch: list[BranchOut]
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    telemetry: TelemetryOut
    error: str = ""
    error_type: str = ""
    human_prompt: str = ""
    next: list[str] = Field(default_factory=list, description="a Plan's chosen next tasks")
    finish: bool = False
    result: PayloadOut | None = None


class EventOut(BaseModel):
    seq: int
    event_id: str
    kind: str
    created_at: datetime | None
    body: dict[str, Any] = Field(description="the event's fields (protobuf JSON mapping)")


class WaitingOut(BaseModel):
    exec_id: str
    name: str
    prompt: str


class TotalsOut(BaseModel):
    tokens_in: int
    tokens_out: int
    cost_usd: float
    executions: int


class LifetimeDetailOut(BaseModel):
    lifetime: LifetimeOut
    graph: dict[str, Any] = Field(description="the recorded GraphSpec (protobuf JSON mapping)")
    labels: dict[str, str]
    input: PayloadOut | None
    output: PayloadOut | None
    forked_from: str = ""
    executions: list[ExecutionOut]
    events: list[EventOut]
    waiting: list[WaitingOut] = Field(description="questions a person has not answered yet")
    totals: TotalsOut


class ResultOut(BaseModel):
    content_type: str
    size: int
    value: Any = Field(None, description="decoded result, when small enough to show")
    truncated: bool = Field(False, description="too large to include; download it")
    download_url: str


class ExecutionDetailOut(BaseModel):
    execution: ExecutionOut
    lifetime_id: str
    input: PayloadOut | None = Field(None, description="the NodeInput's payload, when recorded")
    result: ResultOut | None
    attempts: list[ExecutionOut] = Field(description="every attempt at the same input, in order")


class UsageRowOut(BaseModel):
    key: str
    tokens_in: int
    tokens_out: int
    tokens: int
    cost_usd: float
    executions: int


class UsageOut(BaseModel):
    group_by: str
    tenant_id: str
    rows: list[UsageRowOut]


class ReasonIn(BaseModel):
    reason: str = Field("", max_length=1000)


class AnswerIn(BaseModel):
    input: Any = Field(description="the person's answer: any JSON value")
    exec_id: str = Field("", max_length=200, description="the waiting execution it answers")


class ForkIn(BaseModel):
    from_exec_id: str = Field(min_length=1, max_length=200)
    result: Any = Field(
        None, description="replacement result (any JSON value); omit to run the node again"
    )


class ReplayIn(BaseModel):
    rerun_plans: bool = False


class CommandOut(BaseModel):
    command_id: str


class ForkOut(BaseModel):
    lifetime_id: str


class DivergenceOut(BaseModel):
    seq: int
    event_id: str
    expected: str
    got: str


class PlanDifferenceOut(BaseModel):
    exec_id: str
    name: str
    expected: str
    got: str


class ReplayOut(BaseModel):
    ok: bool
    checked: int
    divergence: DivergenceOut | None
    plan_differences: list[PlanDifferenceOut]


#: Tenant ids as the rest of tickrail writes them (they end up in cookies and topic names).
TENANT_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"


class SignInIn(BaseModel):
    token: str = Field("", max_length=4096)
    tenant: str = Field(
        "", pattern=r"^$|" + TENANT_PATTERN, description="insecure mode: the tenant to show"
    )


class SessionOut(BaseModel):
    tenant_id: str
    insecure: bool
    csrf_token: str
