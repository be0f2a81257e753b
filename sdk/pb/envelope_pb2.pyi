import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_KIND_UNSPECIFIED: _ClassVar[NodeKind]
    NODE_KIND_TASK: _ClassVar[NodeKind]
    NODE_KIND_PLAN: _ClassVar[NodeKind]

class EdgeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDGE_KIND_UNSPECIFIED: _ClassVar[EdgeKind]
    EDGE_KIND_NORMAL: _ClassVar[EdgeKind]
    EDGE_KIND_PARALLEL: _ClassVar[EdgeKind]
    EDGE_KIND_JOIN: _ClassVar[EdgeKind]
    EDGE_KIND_FINAL: _ClassVar[EdgeKind]

class ExecutionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATUS_UNSPECIFIED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_SUCCEEDED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_FAILED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_RETRYING: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_TIMED_OUT: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_WAITING: _ClassVar[ExecutionStatus]

class LifetimeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFETIME_STATUS_UNSPECIFIED: _ClassVar[LifetimeStatus]
    LIFETIME_STATUS_RUNNING: _ClassVar[LifetimeStatus]
    LIFETIME_STATUS_PAUSED: _ClassVar[LifetimeStatus]
    LIFETIME_STATUS_COMPLETED: _ClassVar[LifetimeStatus]
    LIFETIME_STATUS_FAILED: _ClassVar[LifetimeStatus]
    LIFETIME_STATUS_ABORTED: _ClassVar[LifetimeStatus]
NODE_KIND_UNSPECIFIED: NodeKind
NODE_KIND_TASK: NodeKind
NODE_KIND_PLAN: NodeKind
EDGE_KIND_UNSPECIFIED: EdgeKind
EDGE_KIND_NORMAL: EdgeKind
EDGE_KIND_PARALLEL: EdgeKind
EDGE_KIND_JOIN: EdgeKind
EDGE_KIND_FINAL: EdgeKind
EXECUTION_STATUS_UNSPECIFIED: ExecutionStatus
EXECUTION_STATUS_SUCCEEDED: ExecutionStatus
EXECUTION_STATUS_FAILED: ExecutionStatus
EXECUTION_STATUS_RETRYING: ExecutionStatus
EXECUTION_STATUS_TIMED_OUT: ExecutionStatus
EXECUTION_STATUS_WAITING: ExecutionStatus
LIFETIME_STATUS_UNSPECIFIED: LifetimeStatus
LIFETIME_STATUS_RUNNING: LifetimeStatus
LIFETIME_STATUS_PAUSED: LifetimeStatus
LIFETIME_STATUS_COMPLETED: LifetimeStatus
LIFETIME_STATUS_FAILED: LifetimeStatus
LIFETIME_STATUS_ABORTED: LifetimeStatus

class BlobRef(_message.Message):
    __slots__ = ("uri", "size", "sha256")
    URI_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    uri: str
    size: int
    sha256: str
    def __init__(self, uri: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class Payload(_message.Message):
    __slots__ = ("content_type", "inline", "blob")
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    INLINE_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    inline: bytes
    blob: BlobRef
    def __init__(self, content_type: _Optional[str] = ..., inline: _Optional[bytes] = ..., blob: _Optional[_Union[BlobRef, _Mapping]] = ...) -> None: ...

class BranchFrame(_message.Message):
    __slots__ = ("fanout_id", "index", "width")
    FANOUT_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    fanout_id: str
    index: int
    width: int
    def __init__(self, fanout_id: _Optional[str] = ..., index: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...

class ExecutionHeader(_message.Message):
    __slots__ = ("name", "exec_id", "input_id", "graph_id", "graph_version", "lifetime_id", "tenant_id", "attempt", "iteration", "created_at", "started_at", "finished_at", "status", "edge_taken", "parent_exec_ids", "branch", "kind", "from_node", "from_exec_id", "dispatch_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EDGE_TAKEN_FIELD_NUMBER: _ClassVar[int]
    PARENT_EXEC_IDS_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    FROM_EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    exec_id: str
    input_id: str
    graph_id: str
    graph_version: str
    lifetime_id: str
    tenant_id: str
    attempt: int
    iteration: int
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    status: ExecutionStatus
    edge_taken: EdgeKind
    parent_exec_ids: _containers.RepeatedScalarFieldContainer[str]
    branch: _containers.RepeatedCompositeFieldContainer[BranchFrame]
    kind: NodeKind
    from_node: str
    from_exec_id: str
    dispatch_token: str
    def __init__(self, name: _Optional[str] = ..., exec_id: _Optional[str] = ..., input_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., graph_version: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., attempt: _Optional[int] = ..., iteration: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., edge_taken: _Optional[_Union[EdgeKind, str]] = ..., parent_exec_ids: _Optional[_Iterable[str]] = ..., branch: _Optional[_Iterable[_Union[BranchFrame, _Mapping]]] = ..., kind: _Optional[_Union[NodeKind, str]] = ..., from_node: _Optional[str] = ..., from_exec_id: _Optional[str] = ..., dispatch_token: _Optional[str] = ...) -> None: ...

class PolicyTelemetry(_message.Message):
    __slots__ = ("tokens_in", "tokens_out", "cost_usd", "latency_ms", "model", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TOKENS_IN_FIELD_NUMBER: _ClassVar[int]
    TOKENS_OUT_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float
    model: str
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, tokens_in: _Optional[int] = ..., tokens_out: _Optional[int] = ..., cost_usd: _Optional[float] = ..., latency_ms: _Optional[float] = ..., model: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("output", "error", "error_type", "human_prompt", "finish")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    HUMAN_PROMPT_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    output: Payload
    error: str
    error_type: str
    human_prompt: str
    finish: bool
    def __init__(self, output: _Optional[_Union[Payload, _Mapping]] = ..., error: _Optional[str] = ..., error_type: _Optional[str] = ..., human_prompt: _Optional[str] = ..., finish: _Optional[bool] = ...) -> None: ...

class UpstreamResult(_message.Message):
    __slots__ = ("exec_id", "name", "status", "result", "branch", "send_id")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    SEND_ID_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    name: str
    status: ExecutionStatus
    result: TaskResult
    branch: _containers.RepeatedCompositeFieldContainer[BranchFrame]
    send_id: str
    def __init__(self, exec_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., result: _Optional[_Union[TaskResult, _Mapping]] = ..., branch: _Optional[_Iterable[_Union[BranchFrame, _Mapping]]] = ..., send_id: _Optional[str] = ...) -> None: ...

class TaskSend(_message.Message):
    __slots__ = ("task", "input", "id", "after")
    TASK_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    task: str
    input: Payload
    id: str
    after: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[str] = ..., input: _Optional[_Union[Payload, _Mapping]] = ..., id: _Optional[str] = ..., after: _Optional[_Iterable[str]] = ...) -> None: ...

class PlanResult(_message.Message):
    __slots__ = ("next_task_names", "task_inputs", "upstream", "error", "error_type", "finish", "output", "sends")
    class TaskInputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Payload
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Payload, _Mapping]] = ...) -> None: ...
    NEXT_TASK_NAMES_FIELD_NUMBER: _ClassVar[int]
    TASK_INPUTS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SENDS_FIELD_NUMBER: _ClassVar[int]
    next_task_names: _containers.RepeatedScalarFieldContainer[str]
    task_inputs: _containers.MessageMap[str, Payload]
    upstream: _containers.RepeatedCompositeFieldContainer[UpstreamResult]
    error: str
    error_type: str
    finish: bool
    output: Payload
    sends: _containers.RepeatedCompositeFieldContainer[TaskSend]
    def __init__(self, next_task_names: _Optional[_Iterable[str]] = ..., task_inputs: _Optional[_Mapping[str, Payload]] = ..., upstream: _Optional[_Iterable[_Union[UpstreamResult, _Mapping]]] = ..., error: _Optional[str] = ..., error_type: _Optional[str] = ..., finish: _Optional[bool] = ..., output: _Optional[_Union[Payload, _Mapping]] = ..., sends: _Optional[_Iterable[_Union[TaskSend, _Mapping]]] = ...) -> None: ...

class TaskExecution(_message.Message):
    __slots__ = ("header", "telemetry", "result")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    header: ExecutionHeader
    telemetry: PolicyTelemetry
    result: TaskResult
    def __init__(self, header: _Optional[_Union[ExecutionHeader, _Mapping]] = ..., telemetry: _Optional[_Union[PolicyTelemetry, _Mapping]] = ..., result: _Optional[_Union[TaskResult, _Mapping]] = ...) -> None: ...

class PlanExecution(_message.Message):
    __slots__ = ("header", "telemetry", "result")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    header: ExecutionHeader
    telemetry: PolicyTelemetry
    result: PlanResult
    def __init__(self, header: _Optional[_Union[ExecutionHeader, _Mapping]] = ..., telemetry: _Optional[_Union[PolicyTelemetry, _Mapping]] = ..., result: _Optional[_Union[PlanResult, _Mapping]] = ...) -> None: ...

class ExecutionEnvelope(_message.Message):
    __slots__ = ("task", "plan")
    TASK_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    task: TaskExecution
    plan: PlanExecution
    def __init__(self, task: _Optional[_Union[TaskExecution, _Mapping]] = ..., plan: _Optional[_Union[PlanExecution, _Mapping]] = ...) -> None: ...

class ExecutionRef(_message.Message):
    __slots__ = ("seq", "duplicate", "envelope", "dispatch_token", "refused")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    duplicate: bool
    envelope: ExecutionEnvelope
    dispatch_token: str
    refused: str
    def __init__(self, seq: _Optional[int] = ..., duplicate: _Optional[bool] = ..., envelope: _Optional[_Union[ExecutionEnvelope, _Mapping]] = ..., dispatch_token: _Optional[str] = ..., refused: _Optional[str] = ...) -> None: ...

class NodeInput(_message.Message):
    __slots__ = ("input_id", "lifetime_id", "tenant_id", "graph_id", "graph_version", "name", "kind", "iteration", "edge_taken", "parent_exec_ids", "branch", "input", "upstream", "created_at", "human_input", "answers_exec_id", "from_node", "from_exec_id", "graph_digest", "dispatch_token", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INPUT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_VERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    EDGE_TAKEN_FIELD_NUMBER: _ClassVar[int]
    PARENT_EXEC_IDS_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    HUMAN_INPUT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    FROM_EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    input_id: str
    lifetime_id: str
    tenant_id: str
    graph_id: str
    graph_version: str
    name: str
    kind: NodeKind
    iteration: int
    edge_taken: EdgeKind
    parent_exec_ids: _containers.RepeatedScalarFieldContainer[str]
    branch: _containers.RepeatedCompositeFieldContainer[BranchFrame]
    input: Payload
    upstream: _containers.RepeatedCompositeFieldContainer[UpstreamResult]
    created_at: _timestamp_pb2.Timestamp
    human_input: Payload
    answers_exec_id: str
    from_node: str
    from_exec_id: str
    graph_digest: str
    dispatch_token: str
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, input_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., graph_version: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[NodeKind, str]] = ..., iteration: _Optional[int] = ..., edge_taken: _Optional[_Union[EdgeKind, str]] = ..., parent_exec_ids: _Optional[_Iterable[str]] = ..., branch: _Optional[_Iterable[_Union[BranchFrame, _Mapping]]] = ..., input: _Optional[_Union[Payload, _Mapping]] = ..., upstream: _Optional[_Iterable[_Union[UpstreamResult, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., human_input: _Optional[_Union[Payload, _Mapping]] = ..., answers_exec_id: _Optional[str] = ..., from_node: _Optional[str] = ..., from_exec_id: _Optional[str] = ..., graph_digest: _Optional[str] = ..., dispatch_token: _Optional[str] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GraphNodeSpec(_message.Message):
    __slots__ = ("name", "kind", "impl", "continue_on_failure")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    IMPL_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: NodeKind
    impl: str
    continue_on_failure: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[NodeKind, str]] = ..., impl: _Optional[str] = ..., continue_on_failure: _Optional[bool] = ...) -> None: ...

class GraphEdgeSpec(_message.Message):
    __slots__ = ("source", "target", "kind")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    kind: EdgeKind
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ..., kind: _Optional[_Union[EdgeKind, str]] = ...) -> None: ...

class GraphSpec(_message.Message):
    __slots__ = ("graph_id", "version", "entry", "nodes", "edges", "max_iterations", "max_steps", "max_fanout")
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_FANOUT_FIELD_NUMBER: _ClassVar[int]
    graph_id: str
    version: str
    entry: str
    nodes: _containers.RepeatedCompositeFieldContainer[GraphNodeSpec]
    edges: _containers.RepeatedCompositeFieldContainer[GraphEdgeSpec]
    max_iterations: int
    max_steps: int
    max_fanout: int
    def __init__(self, graph_id: _Optional[str] = ..., version: _Optional[str] = ..., entry: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[GraphNodeSpec, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[GraphEdgeSpec, _Mapping]]] = ..., max_iterations: _Optional[int] = ..., max_steps: _Optional[int] = ..., max_fanout: _Optional[int] = ...) -> None: ...

class LifetimeStarted(_message.Message):
    __slots__ = ("graph", "input", "labels", "forked_from_lifetime", "forked_from_exec")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FORKED_FROM_LIFETIME_FIELD_NUMBER: _ClassVar[int]
    FORKED_FROM_EXEC_FIELD_NUMBER: _ClassVar[int]
    graph: GraphSpec
    input: Payload
    labels: _containers.ScalarMap[str, str]
    forked_from_lifetime: str
    forked_from_exec: str
    def __init__(self, graph: _Optional[_Union[GraphSpec, _Mapping]] = ..., input: _Optional[_Union[Payload, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., forked_from_lifetime: _Optional[str] = ..., forked_from_exec: _Optional[str] = ...) -> None: ...

class ExecutionRouted(_message.Message):
    __slots__ = ("exec_id", "name", "status", "edge", "dispatched", "note", "deferred")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    name: str
    status: ExecutionStatus
    edge: EdgeKind
    dispatched: _containers.RepeatedCompositeFieldContainer[NodeInput]
    note: str
    deferred: bool
    def __init__(self, exec_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., edge: _Optional[_Union[EdgeKind, str]] = ..., dispatched: _Optional[_Iterable[_Union[NodeInput, _Mapping]]] = ..., note: _Optional[str] = ..., deferred: _Optional[bool] = ...) -> None: ...

class GuardrailDecision(_message.Message):
    __slots__ = ("exec_id", "rule", "policy_version", "action", "message", "observed", "scope", "observed_json")
    class ObservedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_JSON_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    rule: str
    policy_version: str
    action: str
    message: str
    observed: _containers.ScalarMap[str, float]
    scope: str
    observed_json: str
    def __init__(self, exec_id: _Optional[str] = ..., rule: _Optional[str] = ..., policy_version: _Optional[str] = ..., action: _Optional[str] = ..., message: _Optional[str] = ..., observed: _Optional[_Mapping[str, float]] = ..., scope: _Optional[str] = ..., observed_json: _Optional[str] = ...) -> None: ...

class LifetimeCompleted(_message.Message):
    __slots__ = ("exec_id", "output")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    output: Payload
    def __init__(self, exec_id: _Optional[str] = ..., output: _Optional[_Union[Payload, _Mapping]] = ...) -> None: ...

class LifetimeFailed(_message.Message):
    __slots__ = ("exec_id", "reason", "error_type")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    reason: str
    error_type: str
    def __init__(self, exec_id: _Optional[str] = ..., reason: _Optional[str] = ..., error_type: _Optional[str] = ...) -> None: ...

class LifetimePaused(_message.Message):
    __slots__ = ("exec_id", "reason", "idle")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    reason: str
    idle: bool
    def __init__(self, exec_id: _Optional[str] = ..., reason: _Optional[str] = ..., idle: _Optional[bool] = ...) -> None: ...

class LifetimeResumed(_message.Message):
    __slots__ = ("reason", "human_input", "exec_id")
    REASON_FIELD_NUMBER: _ClassVar[int]
    HUMAN_INPUT_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    reason: str
    human_input: Payload
    exec_id: str
    def __init__(self, reason: _Optional[str] = ..., human_input: _Optional[_Union[Payload, _Mapping]] = ..., exec_id: _Optional[str] = ...) -> None: ...

class LifetimeAborted(_message.Message):
    __slots__ = ("exec_id", "reason")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    reason: str
    def __init__(self, exec_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EnvelopeRefused(_message.Message):
    __slots__ = ("exec_id", "input_id", "name", "reason", "topic")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    input_id: str
    name: str
    reason: str
    topic: str
    def __init__(self, exec_id: _Optional[str] = ..., input_id: _Optional[str] = ..., name: _Optional[str] = ..., reason: _Optional[str] = ..., topic: _Optional[str] = ...) -> None: ...

class NodeOutput(_message.Message):
    __slots__ = ("exec_id", "name", "index", "text", "data")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    name: str
    index: int
    text: str
    data: Payload
    def __init__(self, exec_id: _Optional[str] = ..., name: _Optional[str] = ..., index: _Optional[int] = ..., text: _Optional[str] = ..., data: _Optional[_Union[Payload, _Mapping]] = ...) -> None: ...

class LifetimeEvent(_message.Message):
    __slots__ = ("event_id", "lifetime_id", "tenant_id", "created_at", "seq", "started", "routed", "guardrail", "completed", "failed", "paused", "resumed", "aborted", "refused", "output")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ROUTED_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    lifetime_id: str
    tenant_id: str
    created_at: _timestamp_pb2.Timestamp
    seq: int
    started: LifetimeStarted
    routed: ExecutionRouted
    guardrail: GuardrailDecision
    completed: LifetimeCompleted
    failed: LifetimeFailed
    paused: LifetimePaused
    resumed: LifetimeResumed
    aborted: LifetimeAborted
    refused: EnvelopeRefused
    output: NodeOutput
    def __init__(self, event_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seq: _Optional[int] = ..., started: _Optional[_Union[LifetimeStarted, _Mapping]] = ..., routed: _Optional[_Union[ExecutionRouted, _Mapping]] = ..., guardrail: _Optional[_Union[GuardrailDecision, _Mapping]] = ..., completed: _Optional[_Union[LifetimeCompleted, _Mapping]] = ..., failed: _Optional[_Union[LifetimeFailed, _Mapping]] = ..., paused: _Optional[_Union[LifetimePaused, _Mapping]] = ..., resumed: _Optional[_Union[LifetimeResumed, _Mapping]] = ..., aborted: _Optional[_Union[LifetimeAborted, _Mapping]] = ..., refused: _Optional[_Union[EnvelopeRefused, _Mapping]] = ..., output: _Optional[_Union[NodeOutput, _Mapping]] = ...) -> None: ...

class StartLifetime(_message.Message):
    __slots__ = ("lifetime_id", "tenant_id", "graph", "input", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    lifetime_id: str
    tenant_id: str
    graph: GraphSpec
    input: Payload
    labels: _containers.ScalarMap[str, str]
    def __init__(self, lifetime_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., graph: _Optional[_Union[GraphSpec, _Mapping]] = ..., input: _Optional[_Union[Payload, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LifetimeCommand(_message.Message):
    __slots__ = ("command_id", "lifetime_id", "tenant_id", "start", "resume", "abort", "pause")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    lifetime_id: str
    tenant_id: str
    start: StartLifetime
    resume: LifetimeResumed
    abort: LifetimeAborted
    pause: LifetimePaused
    def __init__(self, command_id: _Optional[str] = ..., lifetime_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., start: _Optional[_Union[StartLifetime, _Mapping]] = ..., resume: _Optional[_Union[LifetimeResumed, _Mapping]] = ..., abort: _Optional[_Union[LifetimeAborted, _Mapping]] = ..., pause: _Optional[_Union[LifetimePaused, _Mapping]] = ...) -> None: ...
