"""Traces and metrics of a lifetime run by separate role processes on Kafka, Postgres,
S3 and Redis: one trace across the processes, and histograms on each /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.spans import check_lifetime_tree, from_console
from tickrail.services import tracing

from .cloud import EXAMPLES, Deployment, cli

pytestmark = pytest.mark.integration
ROLES = [
    ("data-plane", "data-plane"),
    ("control-plane", "control-plane"),
    ("executor", "executor"),
]


@pytest.fixture(scope="module")
def traced(cloud_config: Path) -> Iterator[Deployment]:
    """The roles with OTEL_TRACES_EXPORTER=console: each prints its spans to its log."""
    migrated = cli(cloud_config, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    d = Deployment(cloud_config, cloud_config.parent)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTEL_TRACES_EXPORTER", "console")
        patch.delenv("OTEL_SERVICE_NAME", raising=False)
        try:
            for name, role in ROLES:
                d.start(name, role)
                d.wait_ready()
        except BaseException:
            d.stop()
            raise
    try:
        yield d
    finally:
        d.stop()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_a_lifetime_is_one_trace_across_the_role_processes(traced: Deployment) -> None:
    result = cli(traced.config, "run", str(EXAMPLES / "parallel_tools.py"), "--json", "--quiet")
    assert result.returncode == 0, result.stderr + result.stdout
    lifetime_id = json.loads(result.stdout)["lifetime_id"]

    # Each role's /metrics has histogram buckets and HELP for what it measured.
    executor = traced.metrics("executor")
    assert "# HELP tickrail_node_duration_seconds " in executor
    counts = samples(executor, "tickrail_node_duration_seconds_count")
    weather = (("graph", "parallel_tools"), ("kind", "task"), ("node", "weather"))
    assert counts[weather] >= 1
    assert re.search(r"^tickrail_node_duration_seconds_bucket\{", executor, re.MULTILINE)
    control = traced.metrics("control-plane")
    assert "# HELP tickrail_planner_loop_seconds " in control
    assert samples(control, "tickrail_planner_loop_seconds_count")[()] >= 3
    assert re.search(r"^tickrail_planner_loop_seconds_bucket\{", control, re.MULTILINE)
    data = traced.metrics("data-plane")
    assert samples(data, "tickrail_batch_duration_seconds_count")[(("role", "data_plane"),)] >= 1

    # SIGTERM flushes every process's spans; then assemble the tree from all logs.
    codes = traced.stop()
    assert codes == dict.fromkeys(codes, 0), codes
    spans = []
    for name, _ in ROLES:
        spans += from_console((traced.logs / f"{name}.log").read_text(errors="replace"))
    tree = check_lifetime_tree(spans, lifetime_id, tracing.trace_id_hex(lifetime_id))
    root = tree.pop("root")
    assert root["service"] == "tickrail-control-plane"
    tools = [s for s in tree.values() if s["name"] in {f"task {t}" for t in TOOLS}]
    assert len(tools) == 3 and {s["parent_id"] for s in tools} == {root["span_id"]}
    assert {s["service"] for s in tree.values()} == {"tickrail-executor"}
    mine = [s for s in spans if s["attributes"].get("tickrail.lifetime_id") == lifetime_id]
    assert {s["service"] for s in mine if s["name"] == "persist"} == {"tickrail-data-plane"}
    assert {s["service"] for s in mine if s["name"] == "decide"} == {"tickrail-control-plane"}


TOOLS = ["web_search", "weather", "stock_quote"]
