"""Prometheus metrics: what a real role process serves, what a lifetime counts, and
that docs/deploy.md lists exactly the series that are exported."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tickrail.adapters import Message
from tickrail.sdk import load_graph
from tickrail.services import metrics
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

from .test_process import free_port, get

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FORBIDDEN_LABELS = {"lifetime", "lifetime_id", "exec_id", "input_id", "tenant", "tenant_id"}


@pytest.fixture
def executor_scrape(tmp_path: Path) -> Iterator[str]:
    """/metrics of a real `tickrail executor` process serving parallel_tools."""
    port = free_port()
    argv = ["executor", "--graph", str(EXAMPLES / "parallel_tools.py"), "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickrail.services.cli.main", *argv, "--home", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.1)
        status, text = get(port, "/metrics")
        assert status == 200
        yield text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


def families(text: str) -> dict[str, str]:
    """Exposition name (with _total for counters) -> type, from the # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


def test_a_role_process_serves_histograms_with_help_and_bounded_labels(
    executor_scrape: str,
) -> None:
    text = executor_scrape
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, re.MULTILINE))
    types = families(text)
    for name in types:
        assert helps.get(name), f"{name} has no HELP text"
    assert types["tickrail_node_duration_seconds"] == "histogram"
    assert types["tickrail_planner_loop_seconds"] == "histogram"
    # Every node this executor serves has its buckets from the first scrape.
    for node in ("planner", "web_search", "weather", "stock_quote", "synthesize", "answer"):
        assert f'node="{node}"' in text
    assert re.search(r'^tickrail_node_duration_seconds_bucket\{.*le="600.0"', text, re.MULTILINE)
    assert re.search(r'^tickrail_planner_loop_seconds_bucket\{le="\+Inf"\}', text, re.MULTILINE)
    assert "process_resident_memory_bytes" in types
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), sample


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_lifetime_counts_executions_durations_and_the_planner_loop(
    tmp_path: Path,
) -> None:
    graph = load_graph(str(EXAMPLES / "parallel_tools.py"))
    node = {"graph": "parallel_tools", "node": "weather", "kind": "task"}
    before = {
        "ok": value("tickrail_executions_total", **node, status="SUCCEEDED"),
        "weather": value("tickrail_node_duration_seconds_count", **node),
        "fast": value("tickrail_node_duration_seconds_bucket", **node, le="0.5"),
        "loop": value("tickrail_planner_loop_seconds_count"),
        "batches": value("tickrail_batch_duration_seconds_count", role="data_plane"),
        "dead": value("tickrail_dead_lettered_total", topic="executions"),
    }
    settings = Settings(profile="test", home=str(tmp_path / "state"))
    async with Runtime(settings, [graph]) as rt:
        await rt.bus.publish([Message(rt.topics.executions("t"), "x", b"\xff\x00garbage")])
        lifetime_id = await rt.start_lifetime(graph, None)
        assert (await rt.wait(lifetime_id, timeout=30)).WhichOneof("kind") == "completed"
        scrape = rt.metrics().decode()
    assert value("tickrail_executions_total", **node, status="SUCCEEDED") == before["ok"] + 1
    assert value("tickrail_node_duration_seconds_count", **node) == before["weather"] + 1
    # The tool sleeps 1 s: not counted in a bucket below that.
    assert value("tickrail_node_duration_seconds_bucket", **node, le="0.5") == before["fast"]
    # Three executions dispatched something: the planner (the tools), the last tool
    # to arrive (the join: synthesize), synthesize (answer); answer is FINAL.
    assert value("tickrail_planner_loop_seconds_count") == before["loop"] + 3
    assert value("tickrail_batch_duration_seconds_count", role="data_plane") > before["batches"]
    assert value("tickrail_dead_lettered_total", topic="executions") == before["dead"] + 1
    assert 'tickrail_executions_total{graph="parallel_tools",kind="task"' in scrape


async def test_guardrail_verdicts_are_counted_by_action_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "apiVersion: tickrail/v1\nkind: GuardrailPolicy\nrules:\n"
        "  - name: no-weather\n    scope: execution\n"
        '    condition: execution.name == "weather"\n'
        "    action: ABORT_LIFETIME\n    message: no weather today\n"
    )
    labels = {"action": "ABORT_LIFETIME", "rule": "no-weather"}
    before = value("tickrail_guardrail_verdicts_total", **labels)
    graph = load_graph(str(EXAMPLES / "parallel_tools.py"))
    settings = Settings(profile="test", home=str(tmp_path / "state"), policies=[str(path)])
    async with Runtime(settings, [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph, None)
        assert (await rt.wait(lifetime_id, timeout=30)).WhichOneof("kind") == "aborted"
    assert value("tickrail_guardrail_verdicts_total", **labels) == before + 1


def test_a_role_counts_by_the_old_names_and_refuses_unknown_ones() -> None:
    role = metrics.Metrics("executor")
    before = value("tickrail_refused_total", reason="envelope")
    role.inc("envelopes_refused_total", 2)
    assert value("tickrail_refused_total", reason="envelope") == before + 2
    with pytest.raises(KeyError, match=r"metrics\.refused\.labels"):
        role.inc("no_such_total")


def test_helpers_for_other_modules_count_with_fixed_labels() -> None:
    before = value("tickrail_retries_total", dependency="store")
    metrics.retries.labels(dependency="store").inc()
    assert value("tickrail_retries_total", dependency="store") == before + 1
    before = value("tickrail_refused_total", reason="bad-token")
    metrics.refused.labels(reason="bad-token").inc()
    assert value("tickrail_refused_total", reason="bad-token") == before + 1


def documented() -> dict[str, str]:
    """Series name -> type, from the table in docs/deploy.md's Metrics section."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(tickrail_\w+)` \| (\w+) \|", section, re.MULTILINE)
    return dict(rows)


def test_the_deploy_docs_list_exactly_the_exported_series(executor_scrape: str) -> None:
    exported = {n: t for n, t in families(executor_scrape).items() if n.startswith("tickrail_")}
    assert documented() == exported
