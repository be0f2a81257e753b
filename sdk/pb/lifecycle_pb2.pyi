import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tickrail.sdk.pb import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UsageGrouping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_GROUPING_UNSPECIFIED: _ClassVar[UsageGrouping]
    USAGE_GROUPING_TENANT: _ClassVar[UsageGrouping]
    USAGE_GROUPING_LIFETIME: _ClassVar[UsageGrouping]
    USAGE_GROUPING_NODE: _ClassVar[UsageGrouping]
    USAGE_GROUPING_DAY: _ClassVar[UsageGrouping]
USAGE_GROUPING_UNSPECIFIED: UsageGrouping
USAGE_GROUPING_TENANT: UsageGrouping
USAGE_GROUPING_LIFETIME: UsageGrouping
USAGE_GROUPING_NODE: UsageGrouping
USAGE_GROUPING_DAY: UsageGrouping

class LifetimeSummary(_message.Message):
    __slots__ = ("lifetime_id", "tenant_id", "graph_id", "status", "started_at", "updated_at", "event_count")
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    lifetime_id: str
    tenant_id: str
    graph_id: str
    status: _envelope_pb2.LifetimeStatus
    started_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    event_count: int
    def __init__(self, lifetime_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., status: _Optional[_Union[_envelope_pb2.LifetimeStatus, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_count: _Optional[int] = ...) -> None: ...

class RecordedExecution(_message.Message):
    __slots__ = ("seq", "envelope")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    envelope: _envelope_pb2.ExecutionEnvelope
    def __init__(self, seq: _Optional[int] = ..., envelope: _Optional[_Union[_envelope_pb2.ExecutionEnvelope, _Mapping]] = ...) -> None: ...

class StartLifetimeRequest(_message.Message):
    __slots__ = ("tenant_id", "graph", "input", "labels", "lifetime_id")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    graph: _envelope_pb2.GraphSpec
    input: _envelope_pb2.Payload
    labels: _containers.ScalarMap[str, str]
    lifetime_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., graph: _Optional[_Union[_envelope_pb2.GraphSpec, _Mapping]] = ..., input: _Optional[_Union[_envelope_pb2.Payload, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., lifetime_id: _Optional[str] = ...) -> None: ...

class StartLifetimeResponse(_message.Message):
    __slots__ = ("lifetime_id",)
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    lifetime_id: str
    def __init__(self, lifetime_id: _Optional[str] = ...) -> None: ...

class GetLifetimeRequest(_message.Message):
    __slots__ = ("tenant_id", "lifetime_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    lifetime_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ...) -> None: ...

class GetLifetimeResponse(_message.Message):
    __slots__ = ("summary", "executions", "events")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    summary: LifetimeSummary
    executions: _containers.RepeatedCompositeFieldContainer[RecordedExecution]
    events: _containers.RepeatedCompositeFieldContainer[_envelope_pb2.LifetimeEvent]
    def __init__(self, summary: _Optional[_Union[LifetimeSummary, _Mapping]] = ..., executions: _Optional[_Iterable[_Union[RecordedExecution, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[_envelope_pb2.LifetimeEvent, _Mapping]]] = ...) -> None: ...

class ListLifetimesRequest(_message.Message):
    __slots__ = ("tenant_id", "graph_id", "status", "started_after", "started_before", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AFTER_FIELD_NUMBER: _ClassVar[int]
    STARTED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    graph_id: str
    status: _envelope_pb2.LifetimeStatus
    started_after: _timestamp_pb2.Timestamp
    started_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., status: _Optional[_Union[_envelope_pb2.LifetimeStatus, str]] = ..., started_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLifetimesResponse(_message.Message):
    __slots__ = ("lifetimes", "next_page_token")
    LIFETIMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    lifetimes: _containers.RepeatedCompositeFieldContainer[LifetimeSummary]
    next_page_token: str
    def __init__(self, lifetimes: _Optional[_Iterable[_Union[LifetimeSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchLifetimeRequest(_message.Message):
    __slots__ = ("tenant_id", "lifetime_id", "after_seq", "follow_forever")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FOREVER_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    lifetime_id: str
    after_seq: int
    follow_forever: bool
    def __init__(self, tenant_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., follow_forever: _Optional[bool] = ...) -> None: ...

class WatchLifetimeResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _envelope_pb2.LifetimeEvent
    def __init__(self, event: _Optional[_Union[_envelope_pb2.LifetimeEvent, _Mapping]] = ...) -> None: ...

class PauseLifetimeRequest(_message.Message):
    __slots__ = ("tenant_id", "lifetime_id", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    lifetime_id: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseLifetimeResponse(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class ResumeLifetimeRequest(_message.Message):
    __slots__ = ("tenant_id", "lifetime_id", "input", "exec_id", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    lifetime_id: str
    input: _envelope_pb2.Payload
    exec_id: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., input: _Optional[_Union[_envelope_pb2.Payload, _Mapping]] = ..., exec_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeLifetimeResponse(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class AbortLifetimeRequest(_message.Message):
    __slots__ = ("tenant_id", "lifetime_id", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    lifetime_id: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AbortLifetimeResponse(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class ReplayLifetimeRequest(_message.Message):
    __slots__ = ("tenant_id", "lifetime_id", "rerun_plans")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    RERUN_PLANS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    lifetime_id: str
    rerun_plans: bool
    def __init__(self, tenant_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., rerun_plans: _Optional[bool] = ...) -> None: ...

class Divergence(_message.Message):
    __slots__ = ("seq", "event_id", "expected", "got")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    GOT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    event_id: str
    expected: str
    got: str
    def __init__(self, seq: _Optional[int] = ..., event_id: _Optional[str] = ..., expected: _Optional[str] = ..., got: _Optional[str] = ...) -> None: ...

class PlanDifference(_message.Message):
    __slots__ = ("exec_id", "name", "expected", "got")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    GOT_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    name: str
    expected: str
    got: str
    def __init__(self, exec_id: _Optional[str] = ..., name: _Optional[str] = ..., expected: _Optional[str] = ..., got: _Optional[str] = ...) -> None: ...

class ReplayLifetimeResponse(_message.Message):
    __slots__ = ("ok", "checked", "divergence", "plan_differences")
    OK_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    DIVERGENCE_FIELD_NUMBER: _ClassVar[int]
    PLAN_DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    checked: int
    divergence: Divergence
    plan_differences: _containers.RepeatedCompositeFieldContainer[PlanDifference]
    def __init__(self, ok: _Optional[bool] = ..., checked: _Optional[int] = ..., divergence: _Optional[_Union[Divergence, _Mapping]] = ..., plan_differences: _Optional[_Iterable[_Union[PlanDifference, _Mapping]]] = ...) -> None: ...

class ForkLifetimeRequest(_message.Message):
    __slots__ = ("tenant_id", "lifetime_id", "from_exec_id", "result", "rerun_finished_branches")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RERUN_FINISHED_BRANCHES_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    lifetime_id: str
    from_exec_id: str
    result: _envelope_pb2.Payload
    rerun_finished_branches: bool
    def __init__(self, tenant_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., from_exec_id: _Optional[str] = ..., result: _Optional[_Union[_envelope_pb2.Payload, _Mapping]] = ..., rerun_finished_branches: _Optional[bool] = ...) -> None: ...

class ForkLifetimeResponse(_message.Message):
    __slots__ = ("lifetime_id", "history_seq")
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_SEQ_FIELD_NUMBER: _ClassVar[int]
    lifetime_id: str
    history_seq: int
    def __init__(self, lifetime_id: _Optional[str] = ..., history_seq: _Optional[int] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("tenant_id", "lifetime_id", "group_by")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    lifetime_id: str
    group_by: UsageGrouping
    def __init__(self, tenant_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., group_by: _Optional[_Union[UsageGrouping, str]] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("key", "tokens_in", "tokens_out", "cost_usd", "executions")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TOKENS_IN_FIELD_NUMBER: _ClassVar[int]
    TOKENS_OUT_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    key: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    executions: int
    def __init__(self, key: _Optional[str] = ..., tokens_in: _Optional[int] = ..., tokens_out: _Optional[int] = ..., cost_usd: _Optional[float] = ..., executions: _Optional[int] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("tenant_id", "exec_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    exec_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., exec_id: _Optional[str] = ...) -> None: ...

class GetExecutionResponse(_message.Message):
    __slots__ = ("execution", "result", "content_type")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    execution: RecordedExecution
    result: bytes
    content_type: str
    def __init__(self, execution: _Optional[_Union[RecordedExecution, _Mapping]] = ..., result: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...
