"""What a running node sees: its input, its identity, and where to record usage."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

#: Where a Task's streamed output goes: ``(text, data)``, exactly one of them set.
#: The executor installs one per attempt; outside an executor ``emit`` is a no-op.
OutputSink = Callable[[str | None, Any], None]


@dataclass(slots=True)
class Usage:
    """Telemetry a node reports; guardrails read it."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    model: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Upstream:
    """A Task result as a Plan sees it."""

    name: str
    exec_id: str
    ok: bool
    value: Any
    error: str = ""
    error_type: str = ""
    branch: int | None = None  # index within the fan-out, for join inputs
    send_id: str = ""  # the Send id it answers, for a DAG dependency's result


class HumanInputRequired(Exception):
    """Raised by ``ctx.ask_human``: the Task stops here until a person answers.

    Do not catch it; tickrail records the question and re-runs the Task with
    the answer when the lifetime is resumed with input.
    """

    def __init__(self, prompt: str) -> None:
        super().__init__(prompt)
        self.prompt = prompt


@dataclass(slots=True)
class NodeContext:
    """Passed to ``Task.run`` and ``Plan.plan``."""

    lifetime_id: str
    tenant_id: str
    graph_id: str
    graph_version: str
    name: str
    exec_id: str
    attempt: int
    iteration: int
    input: Any
    usage: Usage = field(default_factory=Usage)
    #: this run's index within the innermost fan-out (a mapped Task's item), else None
    branch: int | None = None
    #: the node that dispatched this one ('' for the entry node)
    from_node: str = ""

    def record_usage(
        self,
        *,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: float = 0.0,
        model: str | None = None,
    ) -> None:
        """Add token and dollar usage (call once per model call; it accumulates)."""
        if tokens_in < 0 or tokens_out < 0 or cost_usd < 0:
            raise ValueError("usage cannot be negative")
        if not math.isfinite(cost_usd):  # NaN would slip past every budget comparison
            raise ValueError(f"cost_usd must be finite, got {cost_usd!r}")
        self.usage.tokens_in += tokens_in
        self.usage.tokens_out += tokens_out
        self.usage.cost_usd += cost_usd
        if model:
            self.usage.model = model

    def record_metric(self, name: str, value: float) -> None:
        """Set a free-form numeric metric that guardrail policies can read."""
        if not name.isidentifier():
            raise ValueError(f"metric name {name!r} must be an identifier")
        if not math.isfinite(value):
            raise ValueError(f"metric {name!r} must be finite, got {value!r}")
        self.usage.metrics[name] = float(value)


_NO_ANSWER: Any = object()


@dataclass(slots=True)
class TaskContext(NodeContext):
    """A Task's context.

    ``input`` is what its Plan passed to it (or, over a Task->Task edge, the
    previous Task's result). ``upstream`` holds the results of the runs it
    waited for (``Send(..., after=[...])``), in ``after`` order, and ``deps``
    the same values by send id; both are empty otherwise, except that a
    Task->Task edge shows the previous Task's result there too.
    """

    human_input: Any = _NO_ANSWER
    upstream: list[Upstream] = field(default_factory=list)
    deps: dict[str, Any] = field(default_factory=dict)
    output_sink: OutputSink | None = field(default=None, repr=False)

    def emit(self, value: Any) -> None:
        """Stream partial output to whoever watches the lifetime, as it happens.

        A ``str`` goes out as a text chunk (watchers print chunks one after the
        other); anything else as a JSON value. Streamed output is progress, not
        record: what the Task returns is still its result. Thread-safe, so a
        plain ``def`` Task can emit too.
        """
        if self.output_sink is None:
            return
        if isinstance(value, str):
            self.output_sink(value, None)
        else:
            self.output_sink(None, value)

    def ask_human(self, prompt: str) -> Any:
        """Ask a person; returns their answer.

        The first time, this parks the Task's branch (the lifetime shows PAUSED
        with ``prompt``) and the Task stops here; ``tickrail lifetimes resume ID
        --input ANSWER`` runs the Task again and this call returns ANSWER. Code
        before the call runs twice, so keep it free of side effects.
        """
        if self.human_input is _NO_ANSWER:
            raise HumanInputRequired(prompt)
        return self.human_input


@dataclass(slots=True)
class PlanContext(NodeContext):
    """A Plan's context.

    ``upstream`` holds the Task results it decides on (all branches, in branch
    order, for a JOIN). ``input`` is the lifetime input for an entry Plan,
    otherwise the single upstream value, or the list of values after a JOIN.
    """

    upstream: list[Upstream] = field(default_factory=list)


_current: ContextVar[NodeContext | None] = ContextVar("tickrail_node_context", default=None)


def current_context() -> NodeContext | None:
    """The context of the node running in this task or thread, if any.

    The executor sets it around user code (threads of a ``def`` node inherit
    it), so helpers such as ``tickrail.llm`` can record usage without being
    handed ``ctx``.
    """
    return _current.get()


def set_current(ctx: NodeContext | None) -> Callable[[], None]:
    """Make ``ctx`` current; returns the function that restores the previous one."""
    token = _current.set(ctx)
    return lambda: _current.reset(token)
