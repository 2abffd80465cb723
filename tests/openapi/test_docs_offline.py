"""/docs and /redoc in headless Chromium with no network but the backend (API.md section 8).

The server is what `make run` starts on a fresh clone: uvicorn on the embedded default
(SQLite, in-process sessions, ENVIRONMENT=development). Every request of the browser that
is not for the backend's origin is aborted as if the machine were offline, and recorded:
none may be made at all, CDN or otherwise. Swagger UI must render its operations list,
styled (the screenshot shows its method badges' colours), and the README's "Authorize"
flow must work in it: CSRF token, register, log in, the new token, an unsafe request.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.announce import announce
from tests.fixtures.client import API, PASSWORD, unique
from tests.fixtures.server import free_port, stop, wait_until_live

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 20_000
# Swagger UI's colours for the GET and POST badges (swagger-ui.css): they are on screen only
# when its stylesheet was loaded and the operations were rendered.
GET_BLUE, POST_GREEN = (0x61, 0xAF, 0xFE), (0x49, 0xCC, 0x90)

try:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Route,
        async_playwright,
        expect,
    )
except ImportError:  # requirements-dev.txt installs it
    async_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[str]:
    """`make run`'s server on a free port, in a directory of its own (no .env, no data/)."""
    home = tmp_path_factory.mktemp("make-run")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = home / "server.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ENVIRONMENT": "development",
        "SQLITE_PATH": str(home / "app.db"),
        "LOG_LEVEL": "warning",
    }
    command = [
        sys.executable, "-m", "uvicorn", "app.main:app", "--app-dir", str(ROOT),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=home, env=env, stdout=output, stderr=subprocess.STDOUT)
    announce(
        pytestconfig,
        f"tests/openapi: started uvicorn on the embedded default (pid {process.pid}) on {base_url}",
    )
    try:
        wait_until_live(process, base_url, log.read_text, timeout=60)
        yield base_url
    finally:
        stop(process)


@pytest.fixture(scope="module")
async def browser(pytestconfig: pytest.Config) -> AsyncIterator["Browser"]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the browser tests need it")
    if async_playwright is None:
        pytest.skip("playwright is not installed (pip install -r requirements-dev.txt)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        announce(pytestconfig, f"tests/openapi: started headless {CHROMIUM} {launched.version} (Playwright)")
        yield launched
        await launched.close()


@dataclass
class OfflineTab:
    """A page whose network reaches the backend's origin and nothing else."""

    page: "Page"
    origin: str
    left: list[str] = field(default_factory=list)  # every request for anywhere else
    errors: list[str] = field(default_factory=list)


@pytest.fixture
async def offline_tab(browser: "Browser", embedded_server: str) -> AsyncIterator[OfflineTab]:
    context: BrowserContext = await browser.new_context(viewport={"width": 1280, "height": 900})
    tab = OfflineTab(await context.new_page(), embedded_server)

    async def only_the_backend(route: "Route") -> None:
        url = route.request.url
        if url == tab.origin or url.startswith(tab.origin + "/"):
            await route.continue_()
        else:
            tab.left.append(url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_the_backend)
    tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.page.on("console", lambda message: _console_error(tab, message))
    yield tab
    await context.close()


def _console_error(tab: OfflineTab, message: "ConsoleMessage") -> None:
    # The browser's own line for every 4xx Swagger UI shows (the refused CSRF token).
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        tab.errors.append(message.text)


async def badge_pixels(browser: "Browser", png: bytes) -> dict[str, int]:
    """How many pixels of the screenshot are Swagger UI's GET blue and POST green, counted in
    a blank page of the browser (no image library needed)."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        return dict(
            await page.evaluate(
                """async ([source, colours]) => {
                    const image = new Image();
                    image.src = source;
                    await image.decode();
                    const canvas = document.createElement("canvas");
                    canvas.width = image.width;
                    canvas.height = image.height;
                    const context = canvas.getContext("2d");
                    context.drawImage(image, 0, 0);
                    const data = context.getImageData(0, 0, image.width, image.height).data;
                    const counts = {};
                    for (const [name, [r, g, b]] of Object.entries(colours)) {
                        let n = 0;
                        for (let i = 0; i < data.length; i += 4) {
                            if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 12) n++;
                        }
                        counts[name] = n;
                    }
                    return counts;
                }""",
                [
                    "data:image/png;base64," + base64.b64encode(png).decode(),
                    {"get": GET_BLUE, "post": POST_GREEN},
                ],
            )
        )
    finally:
        await context.close()


async def execute(page: "Page", operation_id: str, body: dict[str, object] | None = None) -> tuple[int, dict]:
    """Open an operation in Swagger UI, "Try it out", fill the body, "Execute": the status
    and JSON body Swagger UI shows."""
    operation = page.locator(f"[id='operations-{operation_id}']")
    await operation.locator(".opblock-summary").first.click()
    await operation.get_by_role("button", name="Try it out").click()
    if body is not None:
        await operation.locator("textarea.body-param__text").fill(json.dumps(body))
    await operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    await expect(status).not_to_be_empty(timeout=TIMEOUT_MS)
    text = await operation.locator(".live-responses-table .response-col_description pre").first.inner_text()
    code = int((await status.inner_text()).strip())
    # "Clear" (else the next "Execute" would find this response on screen), "Cancel", collapse.
    await operation.get_by_role("button", name="Clear").click()
    await expect(status).to_have_count(0)
    await operation.get_by_role("button", name="Cancel").click()
    await operation.locator(".opblock-summary").first.click()
    return code, json.loads(text)


async def authorize_csrf(page: "Page", token: str) -> None:
    """ "Authorize" → csrfToken: the value, as the README says (replacing any earlier one)."""
    await page.locator(".auth-wrapper button.authorize").click()
    modal = page.locator(".modal-ux")
    scheme = modal.locator(".auth-container", has=page.locator("h4", has_text="csrfToken"))
    logout = scheme.locator("button", has_text="Logout")
    if await logout.count():
        await logout.click()
    await scheme.locator("input").fill(token)
    await scheme.locator("button", has_text="Authorize").click()
    await modal.locator("button.close-modal").click()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
async def test_swagger_ui_renders_offline_and_its_authorize_flow_works(
    offline_tab: OfflineTab, browser: "Browser", tmp_path: Path
) -> None:
    page = offline_tab.page
    await page.goto(f"{offline_tab.origin}/docs")
    operations = page.locator(".opblock")
    await expect(operations.first).to_be_visible(timeout=TIMEOUT_MS)
    assert await operations.count() > 20
    await expect(page.locator("[id='operations-items-create_item_api_v1_items_post']")).to_contain_text(
        f"{API}/items"
    )
    screenshot = tmp_path / "docs.png"
    png = await page.screenshot(path=screenshot, full_page=False)
    pixels = await badge_pixels(browser, png)
    assert pixels["get"] > 500, (pixels, str(screenshot))
    assert pixels["post"] > 500, (pixels, str(screenshot))

    # The README's flow, in Swagger UI itself: the browser's own cookies, the header from "Authorize".
    status, body = await execute(page, "auth-get_csrf_token_api_v1_auth_csrf_get")
    assert status == 200
    await authorize_csrf(page, body["csrf_token"])
    username = unique("docs")
    account = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    status, body = await execute(page, "auth-register_register_api_v1_auth_register_post", account)
    assert status == 201, body
    status, body = await execute(
        page, "auth-login_api_v1_auth_login_post", {"username": username, "password": PASSWORD}
    )
    assert status == 200, body
    session_token = body["csrf_token"]
    # A token is bound to its session: the one from before login is refused now.
    status, body = await execute(page, "items-create_item_api_v1_items_post", {"title": "from the docs"})
    assert (status, body["error"]["code"]) == (403, "csrf_failed")
    await authorize_csrf(page, session_token)
    status, body = await execute(page, "items-create_item_api_v1_items_post", {"title": "from the docs"})
    assert status == 201, body
    assert body["title"] == "from the docs", body

    assert offline_tab.left == []
    assert offline_tab.errors == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
async def test_redoc_renders_offline(offline_tab: OfflineTab) -> None:
    page = offline_tab.page
    await page.goto(f"{offline_tab.origin}/redoc")
    await expect(page.locator("h1").first).to_contain_text("Cookie-session backend", timeout=TIMEOUT_MS)
    await expect(page.get_by_role("menuitem", name="items")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.get_by_text("Create an item owned by the caller").first).to_be_attached()
    assert offline_tab.left == []
    # ReDoc's sidebar asks for its vendor's logo from cdn.redoc.ly; the page's policy keeps
    # the browser from even asking (app/api/docs.py), and that refusal is all it logs.
    assert all("cdn.redoc.ly" in error for error in offline_tab.errors), offline_tab.errors
