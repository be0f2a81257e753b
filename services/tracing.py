"""OpenTelemetry traces: one trace per lifetime, a span per execution.

Optional: with the ``[otel]`` extra installed and ``OTEL_TRACES_EXPORTER`` set
(``otlp``, ``console``, or both, comma-separated; ``none`` or unset: off),
every process of a deployment exports spans; otherwise every hook here is a
cheap no-op and nothing from opentelemetry is imported. The exporters read
their standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``..._PROTOCOL``
``grpc`` or ``http/protobuf``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``...); ``OTEL_SDK_DISABLED=true`` turns tracing off.

The tree of a lifetime, across any number of processes::

    lifetime <graph>                      root; ended by the control plane when the lifetime ends
    ├── decide (start)                    control plane, the start command
    ├── plan <name> / task <name>         executor, one per attempt (attributes: node, kind,
    │   └── persist                       attempt, iteration, status, tokens, cost, model,
    │       └── decide                    exec id); the data plane; the control plane
    └── ...                               every execution is a child of the root

The trace id and the root span id are derived from the lifetime id, so any
process (a restarted control plane, a recovered input) finds the same trace.
The context travels as W3C ``traceparent``/``tracestate``: on ``NodeInput``
(``trace_context``, the execution's parent) and as headers of the messages
between the roles (execution -> persist -> decide).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tickrail.sdk.errors import ConfigurationError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services import logs

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import Span, Tracer

    from tickrail.services.dispatch import DispatchSigner

log = logging.getLogger("tickrail.tracing")

EXPORTERS = ("otlp", "console", "none")
_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_configured = False


def enabled() -> bool:
    return _tracer is not None


def configure(service_name: str = "tickrail", environ: Mapping[str, str] | None = None) -> bool:
    """Set tracing up from the ``OTEL_*`` variables, once per process; True if it is on."""
    global _configured
    if _configured:
        return enabled()
    _configured = True
    env = os.environ if environ is None else environ
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n and n != "none"]
    if not names or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    unknown = sorted(set(names) - set(EXPORTERS))
    if unknown:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER: unknown exporter(s) {', '.join(unknown)} "
            f"(use {', '.join(EXPORTERS)})"
        )
    try:
        exporters = [_exporter(name, env) for name in names]
    except ImportError as exc:
        log.warning(
            "OTEL_TRACES_EXPORTER is set but %s is not installed, so no traces are "
            "exported: pip install 'tickrail[otel]'",
            exc.name,
        )
        return False
    install(exporters, service_name=service_name, environ=env, batch=True)
    return True


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stdout)
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise ConfigurationError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported (use grpc or http/protobuf)"
    )


def install(
    exporters: Sequence[SpanExporter],
    *,
    service_name: str = "tickrail",
    environ: Mapping[str, str] | None = None,
    batch: bool = False,
) -> TracerProvider:
    """Export to these exporters from now on (tests pass an in-memory one)."""
    global _provider, _tracer, _configured
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    env = os.environ if environ is None else environ
    # OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, else ours.
    named = env.get("OTEL_SERVICE_NAME")
    if not named and "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        resource = Resource.create()
    else:
        resource = Resource.create({SERVICE_NAME: named or service_name})
    provider = TracerProvider(resource=resource, id_generator=_id_generator(_forced))
    for exporter in exporters:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    # Spans users open inside their Tasks (their own tracer, or an instrumented
    # HTTP client) then nest under the execution's span.
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(_current_provider())
    if _provider is not None:
        _provider.shutdown()
    _provider, _tracer, _configured = provider, provider.get_tracer("tickrail"), True
    return provider


def _current_provider() -> Any:
    """The global provider: hands out tracers that use whichever provider
    ``install`` set last (the API lets a process set its global provider once)."""
    from opentelemetry import trace

    class CurrentTracer(trace.Tracer):
        def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self._args, self._kwargs = args, kwargs

        def _now(self) -> trace.Tracer:
            if _provider is None:
                return trace.NoOpTracer()
            return _provider.get_tracer(*self._args, **self._kwargs)

        def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
            return self._now().start_span(*args, **kwargs)

        def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
            return self._now().start_as_current_span(*args, **kwargs)

    class CurrentProvider(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return CurrentTracer(args, kwargs)

    return CurrentProvider()


def reset() -> None:
    """Turn tracing off (flushing what was recorded); ``configure`` may run again."""
    global _provider, _tracer, _configured
    if _provider is not None:
        _provider.shutdown()
    _provider = _tracer = None
    _configured = False


def flush(timeout_s: float = 10.0) -> None:
    """Export what is buffered (a process about to exit, or a finished run)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


# ---- the lifetime's trace ----------------------------------------------------


def lifetime_ids(lifetime_id: str) -> tuple[int, int]:
    """The trace id and root span id of a lifetime (derived: every process agrees)."""
    digest = hashlib.sha256(b"tickrail-lifetime\0" + lifetime_id.encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def trace_id_hex(lifetime_id: str) -> str:
    """The lifetime's trace id as backends show it (32 hex digits)."""
    return f"{lifetime_ids(lifetime_id)[0]:032x}"


def _root_context(lifetime_id: str) -> Any:
    from opentelemetry import trace

    trace_id, span_id = lifetime_ids(lifetime_id)
    # The sampler decides once per lifetime, the same in every process: it sees the
    # derived trace id (OTEL_TRACES_SAMPLER=parentbased_traceidratio: whole lifetimes).
    sampled = _provider is not None and _sampled(_provider, trace_id)
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT)
    root = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(trace.NonRecordingSpan(root))


def _sampled(provider: TracerProvider, trace_id: int) -> bool:
    from opentelemetry.sdk.trace.sampling import Decision

    decision = provider.sampler.should_sample(None, trace_id, "lifetime").decision
    return decision == Decision.RECORD_AND_SAMPLE


def _parent(carrier: Mapping[str, str], lifetime_id: str) -> Any:
    """The context in ``carrier``, else the lifetime's root."""
    if carrier.get("traceparent"):
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        return TraceContextTextMapPropagator().extract(dict(carrier))
    return _root_context(lifetime_id)


def _carrier(context: Any = None) -> dict[str, str]:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context)
    return carrier


def headers() -> dict[str, str]:
    """Message headers carrying the current span (empty when tracing is off)."""
    return _carrier() if _tracer is not None else {}


class _Forced:
    """Ids the next root span takes (a lifetime's derived ids), when set."""

    ids: tuple[int, int] | None = None


def _id_generator(forced: _Forced) -> IdGenerator:
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    class LifetimeIds(IdGenerator):
        """Random ids, except for a lifetime's root span, whose ids are derived."""

        def __init__(self) -> None:
            self._random = RandomIdGenerator()

        def generate_trace_id(self) -> int:
            return forced.ids[0] if forced.ids else self._random.generate_trace_id()

        def generate_span_id(self) -> int:
            return forced.ids[1] if forced.ids else self._random.generate_span_id()

    return LifetimeIds()


_forced = _Forced()


def lifetime_finished(
    lifetime_id: str, tenant_id: str, graph_id: str, status: int, started_at: float
) -> None:
    """Emit the lifetime's root span, from its start until now."""
    if _tracer is None or _provider is None:
        return
    from opentelemetry.trace import StatusCode

    _forced.ids = lifetime_ids(lifetime_id)
    try:
        span = _tracer.start_span(
            f"lifetime {graph_id}",
            context=_no_parent(),
            start_time=int(started_at * 1e9),
            attributes={
                "tickrail.lifetime_id": lifetime_id,
                "tickrail.tenant": tenant_id,
                "tickrail.graph": graph_id,
                "tickrail.status": _name(pb.LifetimeStatus.Name(status), "LIFETIME_STATUS_"),
            },
        )
    finally:
        _forced.ids = None
    if status != pb.LIFETIME_STATUS_COMPLETED:
        span.set_status(StatusCode.ERROR)
    span.end(int(time.time() * 1e9))


def _no_parent() -> Any:
    from opentelemetry import context

    return context.Context()


def _name(full: str, prefix: str) -> str:
    return full.removeprefix(prefix)


# ---- executor ------------------------------------------------------------------


class _Noop:
    def finish(self, envelope: pb.ExecutionEnvelope) -> None:
        pass


_NOOP = _Noop()


class _Execution:
    def __init__(self, span: Span) -> None:
        self.span = span

    def finish(self, envelope: pb.ExecutionEnvelope) -> None:
        from opentelemetry.trace import StatusCode

        execution = envelope.task if envelope.HasField("task") else envelope.plan
        header, t = execution.header, execution.telemetry
        status = _name(pb.ExecutionStatus.Name(header.status), "EXECUTION_STATUS_")
        self.span.set_attributes(
            {
                "tickrail.exec_id": header.exec_id,
                "tickrail.status": status,
                "tickrail.tokens_in": t.tokens_in,
                "tickrail.tokens_out": t.tokens_out,
                "tickrail.cost_usd": t.cost_usd,
                "gen_ai.usage.input_tokens": t.tokens_in,
                "gen_ai.usage.output_tokens": t.tokens_out,
            }
        )
        if t.model:
            self.span.set_attributes({"tickrail.model": t.model, "gen_ai.request.model": t.model})
        result = execution.result
        if result.error:
            attributes = {"exception.type": result.error_type, "exception.message": result.error}
            self.span.add_event("exception", attributes)
            self.span.set_status(StatusCode.ERROR, f"{result.error_type}: {result.error}")


class _Quiet:
    """Tracing off: only the log context, as cheap as it gets (this runs per step)."""

    __slots__ = ("_log",)

    def __init__(self, lifetime_id: str, exec_id: str = "") -> None:
        self._log = logs.context(lifetime_id, exec_id)

    def __enter__(self) -> _Noop:
        self._log.__enter__()
        return _NOOP

    def __exit__(self, *exc: object) -> None:
        self._log.__exit__()


def execution_span(
    node_input: pb.NodeInput, attempt_no: int
) -> contextlib.AbstractContextManager[_Noop | _Execution]:
    """The span of one attempt, current while it runs (user spans nest under it)."""
    exec_id = f"{node_input.input_id}.{attempt_no}"
    if _tracer is None:
        return _Quiet(node_input.lifetime_id, exec_id)
    return _execution_span(node_input, attempt_no, exec_id)


@contextlib.contextmanager
def _execution_span(
    node_input: pb.NodeInput, attempt_no: int, exec_id: str
) -> Iterator[_Noop | _Execution]:
    assert _tracer is not None
    kind = "plan" if node_input.kind == pb.NODE_KIND_PLAN else "task"
    with (
        _tracer.start_as_current_span(
            f"{kind} {node_input.name}",
            context=_parent(node_input.trace_context, node_input.lifetime_id),
            attributes={
                "tickrail.lifetime_id": node_input.lifetime_id,
                "tickrail.tenant": node_input.tenant_id,
                "tickrail.graph": node_input.graph_id,
                "tickrail.graph_version": node_input.graph_version,
                "tickrail.node": node_input.name,
                "tickrail.kind": kind,
                "tickrail.attempt": attempt_no,
                "tickrail.iteration": node_input.iteration,
                "tickrail.exec_id": exec_id,
            },
            record_exception=True,
        ) as span,
        logs.context(node_input.lifetime_id, exec_id),
    ):
        yield _Execution(span)


# ---- data plane ----------------------------------------------------------------


class PersistSpans:
    """One ``persist`` span per envelope of a data-plane batch, ended together."""

    def __init__(self) -> None:
        self._spans: list[Span] = []

    def start(self, headers: Mapping[str, str], header: pb.ExecutionHeader) -> None:
        if _tracer is None:
            return
        self._spans.append(
            _tracer.start_span(
                "persist",
                context=_parent(headers, header.lifetime_id),
                attributes={
                    "tickrail.lifetime_id": header.lifetime_id,
                    "tickrail.exec_id": header.exec_id,
                    "tickrail.node": header.name,
                },
            )
        )

    def carriers(self, count: int) -> list[dict[str, str]]:
        """Headers for the references, in the order ``start`` was called."""
        if _tracer is None:
            return [{} for _ in range(count)]
        from opentelemetry import trace

        return [_carrier(trace.set_span_in_context(span)) for span in self._spans]

    def end(self) -> None:
        for span in self._spans:
            span.end()
        self._spans.clear()


# ---- control plane -------------------------------------------------------------


def decide_span(
    headers: Mapping[str, str], lifetime_id: str, what: str
) -> contextlib.AbstractContextManager[Any]:
    """The control plane judging and routing one reference or command."""
    if _tracer is None:
        return logs.context(lifetime_id)  # what _Quiet does, one call fewer per step
    return _decide_span(headers, lifetime_id, what)


@contextlib.contextmanager
def _decide_span(headers: Mapping[str, str], lifetime_id: str, what: str) -> Iterator[None]:
    assert _tracer is not None
    with (
        _tracer.start_as_current_span(
            "decide",
            context=_parent(headers, lifetime_id),
            attributes={"tickrail.lifetime_id": lifetime_id, "tickrail.decides": what},
        ),
        logs.context(lifetime_id),
    ):
        yield


def input_message(node_input: pb.NodeInput, signer: DispatchSigner) -> tuple[bytes, dict[str, str]]:
    """A dispatched input's bytes, signed, and headers carrying the lifetime's trace."""
    if _tracer is None:
        return signer.signed(node_input), {}
    carrier = _carrier(_root_context(node_input.lifetime_id))
    stamped = pb.NodeInput()
    stamped.CopyFrom(node_input)  # the recorded copy in the event stays as routed
    stamped.trace_context.update(carrier)
    return signer.signed(stamped), carrier  # the token does not cover the trace context
