"""Tenancy through the console: tenant A's token sees nothing of tenant B; no token, no data.

A real `tickrail ui --token A=... --token B=...` over state holding lifetimes
of both tenants; every page and endpoint is asked with each kind of
credential (none, a wrong token, A's bearer token, A's browser session).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the console needs the ui extra")

from .server import Console, cli, free_port, launch, run_example, shoot

TOKEN_A = "token-for-tenant-a-0123456789"
TOKEN_B = "token-for-tenant-b-9876543210"


class Http:
    """A tiny client keeping cookies, like a browser would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, list[str], bytes]:
        """Status, Set-Cookie headers, body."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            with self.opener.open(request, timeout=60) as r:
                return r.status, r.headers.get_all("set-cookie") or [], r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get_all("set-cookie") or [], exc.read()

    def cookie(self, name: str) -> str:
        return next((c.value or "" for c in self.jar if c.name == name), "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("tenants")
    a = run_example(home, "coding_agent.py", "--tenant", "A")
    b = run_example(home, "coding_agent.py", "--tenant", "B")
    b_waiting = run_example(home, "human_review.py", "--tenant", "B")
    b_shown = cli(home, "lifetimes", "show", b, "--tenant", "B", "--json")
    env = dict(os.environ, CONSOLE_TOKEN_A=TOKEN_A, CONSOLE_TOKEN_B=TOKEN_B)
    console = Console(home, "--token", "A=CONSOLE_TOKEN_A", "--token", "B=CONSOLE_TOKEN_B", env=env)
    try:
        yield {
            "url": console.url,
            "home": home,
            "a": a,
            "b": b,
            "b_waiting": b_waiting,
            "b_exec": b_shown["executions"][1]["header"]["exec_id"],
            "log": console.log,
        }
    finally:
        console.stop()


def b_paths(t: dict[str, Any]) -> list[str]:
    """Every GET that could show something of tenant B."""
    return [
        f"/api/lifetimes/{t['b']}",
        f"/api/lifetimes/{t['b']}/events",
        f"/api/executions/{t['b_exec']}",
        f"/api/executions/{t['b_exec']}/result",
        f"/api/usage?lifetime_id={t['b']}",
        f"/lifetimes/{t['b']}",
        f"/lifetimes/{t['b']}/live",
        f"/executions/{t['b_exec']}",
    ]


def test_no_token_no_data(two_tenants: dict[str, Any]) -> None:
    anon = Http(two_tenants["url"])
    for path in ["/api/lifetimes", "/api/usage", *b_paths(two_tenants)]:
        code, _, body = anon.call("GET", path)
        if path.startswith("/api/"):
            assert code == 401, (path, code)
        else:  # pages send a browser to the sign-in page
            assert code == 303, (path, code)
        assert two_tenants["b"].encode() not in body
    for verb in ("pause", "abort", "answer", "fork", "replay"):
        code, _, _ = anon.call("POST", f"/api/lifetimes/{two_tenants['b_waiting']}/{verb}", {})
        assert code in (401, 422), (verb, code)
    code, _, _ = anon.call("GET", "/", headers={"authorization": "Bearer not-a-real-token-at-all"})
    assert code == 303
    code, _, _ = anon.call("POST", "/api/session", {"token": "wrong-token-0123456789"})
    assert code == 401
    assert anon.call("GET", "/signin")[0] == 200  # the sign-in page itself is public


def test_tenant_a_sees_nothing_of_tenant_b(two_tenants: dict[str, Any]) -> None:
    t = two_tenants
    a = Http(t["url"])
    bearer = {"authorization": f"Bearer {TOKEN_A}"}
    code, _, body = a.call("GET", "/api/lifetimes", headers=bearer)
    assert code == 200
    listed = json.loads(body)["lifetimes"]
    assert [x["lifetime_id"] for x in listed] == [t["a"]]
    assert {x["tenant_id"] for x in listed} == {"A"}
    code, _, body = a.call("GET", "/api/usage?group_by=lifetime", headers=bearer)
    assert [r["key"] for r in json.loads(body)["rows"]] == [t["a"]]
    for path in b_paths(t):
        code, _, body = a.call("GET", path, headers=bearer)
        assert code == 404, (path, code)  # exactly as if it did not exist
        assert t["b_exec"].encode() not in body or path.endswith(t["b_exec"])
    code, _, _ = a.call("GET", "/api/lifetimes?tenant=B", headers=bearer)
    assert code == 403
    for verb, body in [
        ("pause", {}),
        ("abort", {}),
        ("resume", {}),
        ("answer", {"input": "approve"}),
        ("fork", {"from_exec_id": t["b_exec"]}),
        ("replay", {}),
    ]:
        code, _, _ = a.call("POST", f"/api/lifetimes/{t['b_waiting']}/{verb}", body, bearer)
        assert code == 404, (verb, code)
    b_state = cli(t["home"], "lifetimes", "show", t["b_waiting"], "--tenant", "B", "--json")
    assert b_state["status"] == "PAUSED"  # untouched


def test_a_browser_session_is_scoped_cookie_bound_and_csrf_checked(
    two_tenants: dict[str, Any],
) -> None:
    t = two_tenants
    a = Http(t["url"])
    code, cookies, body = a.call("POST", "/api/session", {"token": TOKEN_A})
    assert code == 200 and json.loads(body)["tenant_id"] == "A"
    assert TOKEN_A.encode() not in body
    session = next(c for c in cookies if c.startswith("tickrail_session="))
    attributes = {part.strip().lower() for part in session.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert not any(TOKEN_A in c for c in cookies)  # a random session id, not the token
    code, _, page = a.call("GET", "/")
    assert code == 200 and t["a"].encode() in page and t["b"].encode() not in page
    assert TOKEN_A.encode() not in page and TOKEN_B.encode() not in page
    for path in b_paths(t):
        assert a.call("GET", path)[0] == 404, path
    # A POST riding on the cookie alone (what a cross-site form could send) is refused.
    replay = f"/api/lifetimes/{t['a']}/replay"
    assert a.call("POST", replay, {})[0] == 403
    csrf = {"x-csrf-token": a.cookie("tickrail_csrf")}
    evil = {**csrf, "origin": "http://evil.example"}
    assert a.call("POST", replay, {}, evil)[0] == 403
    code, _, body = a.call("POST", replay, {}, csrf)
    assert code == 200 and json.loads(body)["ok"] is True
    assert a.call("DELETE", "/api/session")[0] == 403  # no CSRF token: still signed in
    assert a.call("GET", "/api/lifetimes")[0] == 200
    assert a.call("DELETE", "/api/session", headers=csrf)[0] == 204
    assert a.call("GET", "/api/lifetimes")[0] == 401  # signed out


def test_tokens_never_reach_the_log(two_tenants: dict[str, Any]) -> None:
    text = Path(two_tenants["log"]).read_text()
    assert TOKEN_A not in text and TOKEN_B not in text


def test_sign_in_from_the_browser(two_tenants: dict[str, Any]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(base_url=two_tenants["url"])
            page.set_default_timeout(30_000)
            page.goto("/")
            sync_api.expect(page).to_have_url(two_tenants["url"] + "/signin")
            page.fill("#signin-token", TOKEN_B)
            page.click("#signin-form button")
            sync_api.expect(page.locator("#tenant-name")).to_have_text("B")
            rows = page.locator("tr[data-lifetime]")
            sync_api.expect(rows).to_have_count(2)
            assert TOKEN_B not in page.content()
            shoot(page, "signed-in")
            page.click("#sign-out")
            sync_api.expect(page).to_have_url(two_tenants["url"] + "/signin")
        finally:
            browser.close()


def test_no_tokens_is_refused_off_loopback(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickrail.services.cli.main",
            "ui",
            "--address",
            f"0.0.0.0:{free_port()}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "only allowed on a loopback address" in done.stderr


def test_an_unset_token_variable_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_CONSOLE_TOKEN"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickrail.services.cli.main",
            "ui",
            "--address",
            f"127.0.0.1:{free_port()}",
            "--token",
            "A=NO_SUCH_CONSOLE_TOKEN",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "$NO_SUCH_CONSOLE_TOKEN" in done.stderr
