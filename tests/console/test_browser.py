"""The console in a real browser (Debian's Chromium, headless) against a real `tickrail ui`.

One console serves the whole module (embedded profile, insecure on loopback,
state in a temporary directory holding a coding agent and a human review
lifetime recorded by `tickrail run`). What a page must show is computed from
the CLI's own `lifetimes show --json`, not from the console's API.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the console needs the ui extra")
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

from tickrail.sdk.loading import load_graph  # noqa: E402

from .server import EXAMPLES, Console, cli, launch, run_example, shoot  # noqa: E402

WAIT_MS = 30_000  # generous: the machine is shared
SLOW = Path(__file__).with_name("slow.py")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("console")
    coding = run_example(home, "coding_agent.py", "--input", '{"feature": "rate limiter"}')
    review = run_example(home, "human_review.py")
    console = Console(home)
    try:
        yield {"home": home, "url": console.url, "coding": coding, "review": review}
    finally:
        console.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1300, "height": 900}, base_url=site["url"])
    context.set_default_timeout(WAIT_MS)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert not errors, errors  # no script error on any page


def shown(site: dict[str, Any], lifetime_id: str) -> Any:
    return cli(site["home"], "lifetimes", "show", lifetime_id, "--json")


def test_list_shows_every_lifetime_with_its_numbers(page: Any, site: dict[str, Any]) -> None:
    page.goto("/")
    coding = shown(site, site["coding"])
    row = page.locator(f'tr[data-lifetime="{site["coding"]}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("COMPLETED")
    expect(row).to_contain_text("coding_agent")
    expect(row).to_contain_text("default")
    expect(row.locator('[data-field="tokens"]')).to_have_text(f"{coding['totals']['tokens']:,}")
    review = page.locator(f'tr[data-lifetime="{site["review"]}"]')
    expect(review.locator('[data-field="status"]')).to_have_text("PAUSED")
    shoot(page, "list")
    page.goto("/?status=PAUSED")
    expect(page.locator("tr[data-lifetime]")).to_have_count(1)
    page.goto("/?graph_id=nope")
    expect(page.locator("tr[data-lifetime]")).to_have_count(0)


def test_coding_agent_graph_and_timeline_show_the_recorded_runs(
    page: Any, site: dict[str, Any]
) -> None:
    record = shown(site, site["coding"])
    runs: dict[str, set[str]] = {}
    branches = set()
    for e in record["executions"]:
        runs.setdefault(e["header"]["name"], set()).add(e["header"]["input_id"])
        branches.add(
            tuple((b["fanout_id"], b.get("index", 0)) for b in e["header"].get("branch", []))
        )
    page.goto("/")
    page.click(f'a[href="/lifetimes/{site["coding"]}"]')
    expect(page.locator("#lifetime-status")).to_have_text("COMPLETED")
    for node in load_graph(str(EXAMPLES / "coding_agent.py")).spec.nodes:
        name = node.name
        g = page.locator(f'svg.graph g.node[data-node="{name}"]')
        expect(g).to_have_attribute("data-runs", str(len(runs.get(name, ()))))
        expect(g).to_have_attribute("data-status", "SUCCEEDED" if name in runs else "NOT_RUN")
    # The refine loop ran revise twice, each branch fixed once, the join ran once.
    taken = page.locator('svg.graph path.edge[data-source="revise"][data-target="refine"]')
    expect(taken).to_have_attribute("data-taken", "2")
    join = page.locator('svg.graph path.edge[data-kind="JOIN"][data-taken="1"]')
    expect(join).to_have_count(2)  # both branches arrived at the join once
    line = page.locator("svg.timeline")
    expect(line).to_have_attribute("data-rows", str(len(branches)))
    expect(line.locator("rect.bar")).to_have_count(len(record["executions"]))
    expect(page.locator("#decisions tbody tr")).to_have_count(len(record["events"]))
    shoot(page, "lifetime")
    page.click("#replay")
    expect(page.locator("#replay-result")).to_contain_text("OK:")


def test_execution_page_shows_input_result_and_telemetry(page: Any, site: dict[str, Any]) -> None:
    record = shown(site, site["coding"])
    first_test = next(e for e in record["executions"] if e["header"]["name"] == "test_api")
    exec_id = first_test["header"]["exec_id"]
    page.goto(f"/lifetimes/{site['coding']}")
    page.click(f'#executions tr[data-exec="{exec_id}"] a')
    expect(page.locator("h1")).to_contain_text("test_api")
    result = json.loads(page.locator("#exec-result").inner_text())
    assert result["passed"] is False and result["failures"] == ["test_api_edge_case"]
    assert json.loads(page.locator("#exec-input").inner_text())["version"] == 1
    expect(page.locator("#telemetry")).to_contain_text("tests_failed")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    with page.expect_download() as download:
        page.click("#download")
    assert json.loads(Path(download.value.path()).read_text()) == result
    shoot(page, "execution")


def test_a_question_is_answered_from_the_page_and_the_lifetime_completes(
    page: Any, site: dict[str, Any]
) -> None:
    page.goto(f"/lifetimes/{site['review']}")
    expect(page.locator("#lifetime-status")).to_have_text("PAUSED")
    forms = page.locator("form.answer")
    expect(forms).to_have_count(2)
    expect(page.locator("svg.graph g.node[data-status=WAITING]")).to_have_count(2)
    shoot(page, "waiting")
    for exec_id in forms.evaluate_all("fs => fs.map(f => f.dataset.exec)"):
        form = page.locator(f'form.answer[data-exec="{exec_id}"]')
        form.locator("input[name=answer]").fill("approve")
        form.locator("button").click()
        # Marked answered (kept across live redraws), or gone once its re-run is recorded.
        unanswered = page.locator(f'form.answer[data-exec="{exec_id}"]:not(.answered)')
        expect(unanswered).to_have_count(0)
    expect(page.locator("#lifetime-status")).to_have_text("COMPLETED", timeout=60_000)
    output = json.loads(page.locator("#output").inner_text())
    assert output == {
        "approved": True,
        "votes": {"legal_review": True, "security_review": True},
    }
    expect(page.locator("svg.timeline rect.human-wait")).to_have_count(2)
    assert shown(site, site["review"])["status"] == "COMPLETED"


def test_fork_with_an_edited_result_from_the_page(page: Any, site: dict[str, Any]) -> None:
    record = shown(site, site["coding"])
    first_test = next(e for e in record["executions"] if e["header"]["name"] == "test_api")
    page.goto(f"/executions/{first_test['header']['exec_id']}")
    edited = json.loads(page.locator("#fork-result").input_value())
    edited["passed"] = True  # the tests pass after all: no fix needed on this branch
    page.fill("#fork-result", json.dumps(edited))
    page.click("#fork-form button")
    page.wait_for_url(re.compile(r"/lifetimes/(?!" + site["coding"] + ")"))
    expect(page.locator("#lifetime-status")).to_have_text("COMPLETED", timeout=60_000)
    expect(page.locator(".summary")).to_contain_text(f"fork of {site['coding']}")
    expect(page.locator('svg.graph g.node[data-node="fix_api"]')).to_have_attribute(
        "data-runs", "0"
    )
    expect(page.locator('svg.graph g.node[data-node="fix_tests"]')).to_have_attribute(
        "data-runs", "1"
    )
    forked = page.url.rsplit("/", 1)[1]
    names = Counter(e["header"]["name"] for e in shown(site, forked)["executions"])
    assert names["fix_api"] == 0 and names["ship_api"] == 1
    shoot(page, "fork")


def test_usage_page_charts_tokens_and_dollars(page: Any, site: dict[str, Any]) -> None:
    by_day = cli(site["home"], "usage", "--by", "day", "--json")
    page.goto("/usage")
    tenant = page.locator('#usage-tenant svg.chart g.chart-row[data-key="default"]')
    expect(tenant).to_have_attribute(
        "data-tokens", str(sum(r["tokens_in"] + r["tokens_out"] for r in by_day))
    )
    expect(page.locator('#usage-graph g.chart-row[data-key="coding_agent"]')).to_have_count(1)
    expect(page.locator("#usage-day g.chart-row")).to_have_count(len(by_day))
    shoot(page, "usage")


def test_pause_and_abort_from_the_page(page: Any, site: dict[str, Any]) -> None:
    evil = '<img src=x onerror="document.title=1">'  # recorded text is shown as text
    waiting = run_example(site["home"], "human_review.py", "--input", json.dumps({"change": evil}))
    page.goto("/")
    expect(page.locator(f'tr[data-lifetime="{waiting}"] [data-field="status"]')).to_have_text(
        "PAUSED"
    )  # the list page picked up a lifetime recorded after it loaded (live list)
    page.goto(f"/lifetimes/{waiting}")
    expect(page.locator("q.prompt").first).to_contain_text(evil)
    assert page.title() != "1" and page.locator("main img").count() == 0
    page.click('button.act[data-action="abort"]')
    expect(page.locator("#lifetime-status")).to_have_text("ABORTED")
    expect(page.locator("button.act")).to_have_count(0)


def test_a_running_lifetime_updates_live_and_is_paused_and_resumed_from_the_page(
    page: Any, site: dict[str, Any]
) -> None:
    # The console owns the state, so this run's lifetime runs in the console.
    runner = subprocess.Popen(
        [sys.executable, "-m", "tickrail.services.cli.main", "run", str(SLOW), "--quiet"],
        cwd=site["home"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        page.goto("/")
        row = page.locator('tr[data-graph="slow"]')
        expect(row.locator('[data-field="status"]')).to_have_text("RUNNING")  # appeared live
        lifetime_id = row.get_attribute("data-lifetime")
        page.goto(f"/lifetimes/{lifetime_id}")
        ticks = page.locator('svg.graph g.node[data-node="tick"]')
        first = int(ticks.get_attribute("data-runs") or 0)
        expect(ticks).not_to_have_attribute("data-runs", str(first))  # redrawn as it runs
        page.click('button.act[data-action="pause"]')
        expect(page.locator("#lifetime-status")).to_have_text("PAUSED")
        expect(page.locator('button.act[data-action="resume"]')).to_have_count(1)
        page.click('button.act[data-action="resume"]')
        expect(page.locator("#lifetime-status")).to_have_text("RUNNING")
        page.goto("/")
        status = page.locator(f'tr[data-lifetime="{lifetime_id}"] [data-field="status"]')
        expect(status).to_have_text("RUNNING")
        csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "tickrail_csrf")
        answer = page.request.post(
            f"/api/lifetimes/{lifetime_id}/abort",
            data={"reason": "enough"},
            headers={"x-csrf-token": csrf},
        )
        assert answer.ok, answer.text()
        expect(status).to_have_text("ABORTED")  # the list follows without a reload
    finally:
        try:
            runner.wait(timeout=60)  # the run follows its lifetime to the end (aborted)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()
            raise


def test_an_offloaded_result_is_downloaded_whole(page: Any, site: dict[str, Any]) -> None:
    big = Path(__file__).parents[1] / "integration" / "big_result.py"
    lifetime_id = cli(site["home"], "run", str(big), "--json", "--quiet")["lifetime_id"]
    page.goto(f"/lifetimes/{lifetime_id}")
    page.click('#executions tr[data-name="produce"] a')
    expect(page.locator("main")).to_contain_text("Too large to show here")
    with page.expect_download() as download:
        page.click("#download")
    data = Path(download.value.path()).read_bytes()
    assert data == bytes(range(256)) * (3 * 1024 * 1024 // 256)  # from the blob store, verified
