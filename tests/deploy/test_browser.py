"""The demo SPA (web/) in headless Chromium (Debian's, driven by Playwright), through
Caddy over https: the whole flow a user goes through, what page scripts can and cannot
see, reloads, logout, a real cross-site request forgery attempt from a page of another
site, and a live update appearing without a reload.

The page runs under the Caddyfile's CSP: a console error or a CSP violation fails a test.
"""

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import SESSION_COOKIE, Edge, requires_caddy
from tests.fixtures.announce import announce
from tests.fixtures.client import API, PASSWORD, unique

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 10_000

try:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Locator,
        Page,
        Request,
        async_playwright,
        expect,
    )
except ImportError:  # requirements-dev.txt installs it
    async_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="session")
async def browser(pytestconfig: pytest.Config) -> AsyncIterator["Browser"]:
    requires_caddy()
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the browser tests need it")
    if async_playwright is None:
        pytest.skip("playwright is not installed (pip install -r requirements-dev.txt)")
    async with async_playwright() as playwright:
        # The system's Chromium: Playwright's own browser download is not needed.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        announce(pytestconfig, f"tests/deploy: started headless {CHROMIUM} {launched.version} (Playwright)")
        yield launched
        await launched.close()


class Tab:
    """A browser context (its own cookie jar: one user) with one page on the SPA, and
    the console errors the page produced."""

    def __init__(self, context: "BrowserContext", page: "Page", edge: Edge) -> None:
        self.context, self.page, self.edge = context, page, edge
        self.errors: list[str] = []
        self.requests: list[str] = []  # "METHOD path" of every request the page made
        page.on("request", lambda request: self.requests.append(f"{request.method} {request.url}"))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # A request that got no answer at all (the page's "Failed to fetch"): named, with
        # why. Not one the page gave up itself (a reload or a closed tab aborts its fetches).
        page.on("requestfailed", self._failed)

    def _failed(self, request: "Request") -> None:
        # Our own origin only: another site's page in the flow (an OpenID provider's login
        # form asks for web fonts this machine cannot reach) is not ours to answer.
        if request.url.startswith(self.edge.base_url) and request.failure != "net::ERR_ABORTED":
            self.errors.append(f"no answer: {request.method} {request.url}: {request.failure}")

    def _console(self, message: "ConsoleMessage") -> None:
        # The browser's own line for every 4xx the page handles (an anonymous /users/me).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    async def open(self, path: str = "/") -> None:
        await self.page.goto(self.edge.base_url + path)
        await expect(self.page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)

    async def register_and_log_in(self) -> str:
        username = unique("b")
        page = self.page
        form = page.locator("#register-form")
        await form.locator("[name=email]").fill(f"{username}@example.com")
        await form.locator("[name=username]").fill(username)
        await form.locator("[name=password]").fill(PASSWORD)
        await form.locator("[type=submit]").click()
        await expect(page.locator("#notice")).not_to_be_empty(timeout=TIMEOUT_MS)
        login = page.locator("#login-form")
        await login.locator("[name=username]").fill(username)
        await login.locator("[name=password]").fill(PASSWORD)
        await login.locator("[type=submit]").click()
        await expect(page.locator("#whoami")).to_contain_text(username, timeout=TIMEOUT_MS)
        await expect(page.locator("#app")).to_be_visible()
        return username

    async def create_item(self, title: str, *, private: bool = False) -> None:
        form = self.page.locator("#item-form")
        await form.locator("[name=title]").fill(title)
        await form.locator("[name=description]").fill(f"about {title}")
        if private:
            await form.locator("[name=is_private]").check()
        await form.locator("[type=submit]").click()
        await expect(self.item(title)).to_have_count(1, timeout=TIMEOUT_MS)

    def item(self, title: str) -> "Locator":
        return self.page.locator("#items li", has=self.page.locator(".title", has_text=title))

    async def api_status(self, path: str) -> int:
        """What the page's own fetch of `path` answers (with the browser's cookies)."""
        return int(await self.page.evaluate("(path) => fetch(path).then((r) => r.status)", path))

    async def cookie(self, name: str) -> dict[str, object] | None:
        for cookie in await self.context.cookies(self.edge.base_url):
            if cookie["name"] == name:
                return dict(cookie)
        return None


@pytest.fixture
async def open_tab(browser: "Browser", edge: Edge) -> AsyncIterator:
    contexts: list[BrowserContext] = []
    tabs: list[Tab] = []

    async def make() -> Tab:
        context = await browser.new_context(ignore_https_errors=True)
        contexts.append(context)
        tab = Tab(context, await context.new_page(), edge)
        tabs.append(tab)
        await tab.open()
        return tab

    yield make
    for context in contexts:
        await context.close()
    for tab in tabs:
        assert tab.errors == [], tab.errors


async def test_register_log_in_create_and_delete_items(open_tab) -> None:
    tab: Tab = await open_tab()
    await expect(tab.page.locator("#anon")).to_be_visible()
    # A browser that never logged in asks who it is once, and tries no refresh.
    api_calls = [request for request in tab.requests if "/api/" in request]
    assert not [call for call in api_calls if "/auth/refresh" in call], api_calls
    assert len([call for call in api_calls if call.endswith("/users/me")]) == 1, api_calls
    await tab.register_and_log_in()
    public, private = unique("public-"), unique("private-")
    await tab.create_item(public)
    await tab.create_item(private, private=True)
    await expect(tab.item(public)).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(tab.item(private)).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(tab.item(private).locator(".private")).to_have_count(1)
    await expect(tab.item(public).locator(".private")).to_have_count(0)
    # Newest first.
    await expect(tab.page.locator("#items li .title").first).to_have_text(private)

    await tab.item(public).locator("button.delete").click()
    await expect(tab.item(public)).to_have_count(0, timeout=TIMEOUT_MS)
    # Gone on the server too, not only from the page.
    await tab.page.reload()
    await expect(tab.page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
    await expect(tab.item(private)).to_have_count(1)
    await expect(tab.item(public)).to_have_count(0)


async def test_markup_in_a_title_is_shown_as_text(open_tab) -> None:
    tab: Tab = await open_tab()
    await tab.register_and_log_in()
    title = f"<img src=x onerror=\"document.title='owned'\">{unique()}"
    await tab.create_item(title)
    await expect(tab.item(title)).to_have_count(1, timeout=TIMEOUT_MS)
    assert await tab.page.locator("#items img").count() == 0
    assert await tab.page.title() != "owned"


async def test_scripts_never_see_the_session_or_refresh_cookie(open_tab) -> None:
    tab: Tab = await open_tab()
    await tab.register_and_log_in()
    visible = await tab.page.evaluate("document.cookie")
    assert "session" not in visible
    assert "refresh" not in visible
    # The browser does hold them, HttpOnly and Secure.
    session = await tab.cookie(SESSION_COOKIE)
    assert session is not None
    assert session["httpOnly"] is True
    assert session["secure"] is True
    assert session["sameSite"] in ("Lax", "Strict")
    # Nor does the page keep a token anywhere a script could read it.
    stored = await tab.page.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    assert str(session["value"]) not in stored


async def test_a_reload_keeps_the_user_logged_in(open_tab) -> None:
    tab: Tab = await open_tab()
    username = await tab.register_and_log_in()
    await tab.page.reload()
    await expect(tab.page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
    await expect(tab.page.locator("#whoami")).to_contain_text(username)
    # An expired session cookie (the browser drops it at Max-Age) with a live refresh
    # cookie: the page refreshes instead of showing the login form.
    await tab.context.clear_cookies(name=SESSION_COOKIE)
    await tab.page.reload()
    await expect(tab.page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
    await expect(tab.page.locator("#whoami")).to_contain_text(username)
    assert await tab.cookie(SESSION_COOKIE) is not None


async def test_the_session_is_refreshed_before_it_expires(browser: "Browser", edge: Edge) -> None:
    context = await browser.new_context(ignore_https_errors=True)
    try:
        page = await context.new_page()
        # The page's clock only: the server's sessions age in real time.
        await page.clock.install()
        tab = Tab(context, page, edge)
        await tab.open()
        await tab.register_and_log_in()
        first = await tab.cookie(SESSION_COOKIE)
        assert first is not None
        async with page.expect_response(
            lambda r: r.url.endswith("/auth/refresh"), timeout=TIMEOUT_MS
        ) as info:
            # Most of the session's 30 minutes, not all: the refresh comes before expiry.
            await page.clock.fast_forward("27:00")
        assert (await info.value).status == 200
        second = await tab.cookie(SESSION_COOKIE)
        assert second is not None
        assert second["value"] != first["value"]
        assert await tab.api_status(f"{API}/users/me") == 200
        # The old session was revoked by the rotation.
        async with httpx.AsyncClient(verify=edge.ssl_context()) as outsider:
            old = await outsider.get(
                f"{edge.base_url}{API}/users/me", headers={"Cookie": f"{SESSION_COOKIE}={first['value']}"}
            )
        assert old.status_code == 401
        assert tab.errors == []
    finally:
        await context.close()


async def test_after_logout_the_api_answers_401(open_tab, edge: Edge) -> None:
    tab: Tab = await open_tab()
    await tab.register_and_log_in()
    session = await tab.cookie(SESSION_COOKIE)
    assert session is not None
    await tab.page.locator("#logout").click()
    await expect(tab.page.locator("#anon")).to_be_visible(timeout=TIMEOUT_MS)
    assert await tab.api_status(f"{API}/users/me") == 401
    # Revoked on the server, not only forgotten by the browser.
    async with httpx.AsyncClient(verify=edge.ssl_context()) as outsider:
        response = await outsider.get(
            f"{edge.base_url}{API}/users/me", headers={"Cookie": f"{SESSION_COOKIE}={session['value']}"}
        )
    assert response.status_code == 401


async def test_log_out_everywhere_ends_the_other_tab(open_tab) -> None:
    first: Tab = await open_tab()
    username = await first.register_and_log_in()
    # The same user in a second browser (a second login).
    second: Tab = await open_tab()
    login = second.page.locator("#login-form")
    await login.locator("[name=username]").fill(username)
    await login.locator("[name=password]").fill(PASSWORD)
    await login.locator("[type=submit]").click()
    await expect(second.page.locator("#whoami")).to_contain_text(username, timeout=TIMEOUT_MS)
    await expect(second.page.locator("#live")).to_have_attribute("data-state", "open", timeout=TIMEOUT_MS)

    await first.page.locator("#logout-all").click()
    await expect(first.page.locator("#anon")).to_be_visible(timeout=TIMEOUT_MS)
    # The other browser's socket is closed (4401) and its page goes to the login form.
    await expect(second.page.locator("#anon")).to_be_visible(timeout=TIMEOUT_MS)
    assert await second.api_status(f"{API}/users/me") == 401


async def test_a_live_update_appears_without_a_reload(open_tab) -> None:
    watcher: Tab = await open_tab()
    await watcher.register_and_log_in()
    await expect(watcher.page.locator("#live")).to_have_attribute("data-state", "open", timeout=TIMEOUT_MS)
    author: Tab = await open_tab()
    await author.register_and_log_in()
    public, private = unique("live-"), unique("secret-")
    await author.create_item(private, private=True)
    await author.create_item(public)
    await expect(watcher.item(public)).to_have_count(1, timeout=TIMEOUT_MS)
    # Someone else's private item never reaches the page.
    await expect(watcher.item(private)).to_have_count(0)
    await author.item(public).locator("button.delete").click()
    await expect(watcher.item(public)).to_have_count(0, timeout=TIMEOUT_MS)


# ------------------------------------------------------------------ cross-site forgery

ATTACK_PAGE = """<!doctype html>
<html><body>
<form id="forged" method="post" action="{target}/api/v1/items" enctype="text/plain" target="sink">
  <input name='{{"title": "{marker}", "pad": "' value='"}}'>
</form>
<form id="forged-logout" method="post" action="{target}/api/v1/auth/logout-all" target="sink2"></form>
<iframe name="sink"></iframe><iframe name="sink2"></iframe>
<script>
  const results = {{}};
  const body = JSON.stringify({{ title: "{marker}" }});
  Promise.allSettled([
    fetch("{target}/api/v1/items", {{ method: "POST", mode: "no-cors", credentials: "include",
      headers: {{ "Content-Type": "text/plain" }}, body }}),
    fetch("{target}/api/v1/items", {{ method: "POST", credentials: "include",
      headers: {{ "Content-Type": "application/json", "X-CSRF-Token": "forged" }}, body }}),
    new Promise((resolve) => {{
      const ws = new WebSocket("{ws_target}/api/v1/ws");
      ws.onopen = () => {{ results.ws = "open"; resolve(); }};
      ws.onerror = () => {{ results.ws = "refused"; resolve(); }};
    }}),
  ]).then(() => {{
    document.getElementById("forged").submit();
    document.getElementById("forged-logout").submit();
    setTimeout(() => {{ document.title = "done:" + results.ws; }}, 1500);
  }});
</script>
</body></html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture
def attacker_site(tmp_path: Path, edge: Edge) -> Iterator[tuple[str, str]]:
    """A page on another site (http://127.0.0.1:<port>, not localhost) that tries to
    create an item and log the user out everywhere with the user's cookies."""
    marker = unique("forged-")
    (tmp_path / "index.html").write_text(
        ATTACK_PAGE.format(
            target=edge.base_url, ws_target=edge.base_url.replace("https", "wss"), marker=marker
        )
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", marker
    finally:
        server.shutdown()
        server.server_close()


async def test_a_page_of_another_site_cannot_act_with_the_users_cookies(
    open_tab, attacker_site: tuple[str, str]
) -> None:
    tab: Tab = await open_tab()
    username = await tab.register_and_log_in()
    url, marker = attacker_site
    evil = await tab.context.new_page()  # same browser, same cookies
    await evil.goto(url)
    await expect(evil).to_have_title("done:refused", timeout=TIMEOUT_MS)
    await evil.close()
    await asyncio.sleep(0.5)  # the forms' responses, had they been accepted

    assert await tab.api_status(f"{API}/users/me") == 200  # not logged out
    found = await tab.page.evaluate(
        "(q) => fetch('/api/v1/items?q=' + encodeURIComponent(q)).then((r) => r.json())", marker
    )
    assert found["total"] == 0, found
    await tab.page.reload()
    await expect(tab.page.locator("#whoami")).to_contain_text(username, timeout=TIMEOUT_MS)
