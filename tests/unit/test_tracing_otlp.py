"""OTLP export: `tickrail run` with OTEL_TRACES_EXPORTER=otlp sends the lifetime's
trace to a collector, over http/protobuf and over gRPC (a collector this test runs)."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc

from tests.spans import Span, check_lifetime_tree
from tickrail.services import tracing

ROOT = Path(__file__).resolve().parents[2]


def spans_of(requests: list[otlp.ExportTraceServiceRequest]) -> list[Span]:
    out: list[Span] = []
    for request in requests:
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}.get(
                "service.name"
            )
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    attributes = {a.key: _value(a.value) for a in s.attributes}
                    out.append(
                        {
                            "name": s.name,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_id": s.parent_span_id.hex() or None,
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "attributes": attributes,
                            "service": service,
                        }
                    )
    return out


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value") or "string_value")


class Collector(http.server.BaseHTTPRequestHandler):
    received: list[otlp.ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        assert self.path == "/v1/traces", self.path
        self.received.append(otlp.ExportTraceServiceRequest.FromString(body))
        reply = otlp.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_collector() -> Iterator[tuple[str, list[otlp.ExportTraceServiceRequest]]]:
    received: list[otlp.ExportTraceServiceRequest] = []
    handler = type("Handler", (Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


class TraceService(otlp_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.received: list[otlp.ExportTraceServiceRequest] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.received.append(request)
        return otlp.ExportTraceServiceResponse()


@pytest.fixture
def grpc_collector() -> Iterator[tuple[str, list[otlp.ExportTraceServiceRequest]]]:
    service = TraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    otlp_grpc.add_TraceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", service.received
    finally:
        server.stop(grace=None)


def run(tmp_path: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TICKRAIL_"))}
    environ.update(env, OTEL_TRACES_EXPORTER="otlp", OTEL_SERVICE_NAME="agents-test")
    argv = ["run", "examples/parallel_tools.py", "--quiet", "--json", "--home", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "tickrail.services.cli.main", *argv],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lifetime_id: str = json.loads(result.stdout)["lifetime_id"]
    return lifetime_id


def check(received: list[otlp.ExportTraceServiceRequest], lifetime_id: str) -> None:
    # The run flushes before it exits: everything has arrived when it returns.
    spans = spans_of(received)
    tree = check_lifetime_tree(spans, lifetime_id, tracing.trace_id_hex(lifetime_id))
    tree.pop("root")
    assert len([s for s in tree.values() if s["name"].startswith("task ")]) == 4
    assert {s["service"] for s in spans} == {"agents-test"}


def test_otlp_over_http_protobuf(
    tmp_path: Path, http_collector: tuple[str, list[otlp.ExportTraceServiceRequest]]
) -> None:
    endpoint, received = http_collector
    lifetime_id = run(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    check(received, lifetime_id)


def test_otlp_over_grpc(
    tmp_path: Path, grpc_collector: tuple[str, list[otlp.ExportTraceServiceRequest]]
) -> None:
    endpoint, received = grpc_collector
    lifetime_id = run(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_INSECURE="true",
    )
    check(received, lifetime_id)
