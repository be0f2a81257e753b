"""The console's pages against the cloud profile: role processes on Kafka, Postgres, S3
and Redis, and `tickrail ui` as one more process reading the store and publishing
commands (no role of its own), driven by Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.console.server import Console, launch
from tests.integration.cloud import EXAMPLES, Deployment, cli

pytestmark = pytest.mark.integration
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi", reason="the console needs the ui extra")


@pytest.fixture(scope="module")
def cloud_config(cloud_config: Path) -> Path:
    """The shared cloud settings, with the human review graph served too."""
    config = yaml.safe_load(cloud_config.read_text())
    config["graphs"] = [*config["graphs"], str(EXAMPLES / "human_review.py")]
    cloud_config.write_text(yaml.safe_dump(config))
    return cloud_config


def run(config: Path, example: str) -> Any:
    done = cli(config, "run", str(EXAMPLES / example), "--json", "--quiet")
    assert done.returncode in (0, 3), done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def console(deployment: Deployment, cloud_config: Path) -> Iterator[Console]:
    ui = Console(cloud_config.parent, "--config", str(cloud_config), timeout=90)
    try:
        yield ui
    finally:
        ui.stop()


def test_the_pages_work_on_the_cloud_profile(console: Console, cloud_config: Path) -> None:
    coding = run(cloud_config, "coding_agent.py")
    review = run(cloud_config, "human_review.py")
    assert (coding["status"], review["status"]) == ("COMPLETED", "PAUSED")
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(base_url=console.url, viewport={"width": 1300, "height": 900})
            page.set_default_timeout(60_000)
            page.goto("/")
            row = page.locator(f'tr[data-lifetime="{coding["lifetime_id"]}"]')
            expect(row.locator('[data-field="status"]')).to_have_text("COMPLETED")
            page.click(f'a[href="/lifetimes/{coding["lifetime_id"]}"]')
            expect(page.locator('svg.graph g.node[data-node="check_api"]')).to_have_attribute(
                "data-runs", "4"
            )
            expect(page.locator("svg.timeline rect.bar")).to_have_count(coding["executions"])
            # Answer both questions from the page; the cloud executors run the answers.
            page.goto(f"/lifetimes/{review['lifetime_id']}")
            forms = page.locator("form.answer")
            expect(forms).to_have_count(2)
            for exec_id in forms.evaluate_all("fs => fs.map(f => f.dataset.exec)"):
                form = page.locator(f'form.answer[data-exec="{exec_id}"]')
                form.locator("input[name=answer]").fill("approve")
                form.locator("button").click()
                unanswered = page.locator(f'form.answer[data-exec="{exec_id}"]:not(.answered)')
                expect(unanswered).to_have_count(0)
            expect(page.locator("#lifetime-status")).to_have_text("COMPLETED", timeout=90_000)
            # Fork the coding agent at its first test run, with the tests passing.
            page.goto(f"/lifetimes/{coding['lifetime_id']}")
            page.locator('#executions tr[data-name="test_api"] a').first.click()
            edited = json.loads(page.locator("#fork-result").input_value())
            edited["passed"] = True
            page.fill("#fork-result", json.dumps(edited))
            page.click("#fork-form button")
            page.wait_for_url(re.compile(r"/lifetimes/(?!" + coding["lifetime_id"] + ")"))
            expect(page.locator("#lifetime-status")).to_have_text("COMPLETED", timeout=90_000)
            expect(page.locator('svg.graph g.node[data-node="fix_api"]')).to_have_attribute(
                "data-runs", "0"
            )
            page.goto("/usage")
            expect(page.locator("#usage-graph g.chart-row")).to_have_count(2)
        finally:
            browser.close()
