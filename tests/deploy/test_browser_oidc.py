"""Sign-in with OpenID Connect (API.md section 11) in headless Chromium through Caddy over
https: the SPA's "Sign in with test" link, the real provider's own login and consent
pages (node-oidc-provider, tests/fixtures/oidc.py), the way back with the cookies a
browser keeps (SameSite=Lax for the pending sign-in, across sites), the Security section's
identities, and the error a refused sign-in shows.

The browser, the tabs and their console-error check are test_browser.py's.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import test_browser as browser_tests
from tests.deploy.conftest import SESSION_COOKIE, Edge
from tests.deploy.test_browser import TIMEOUT_MS, Tab
from tests.fixtures.client import PASSWORD, unique
from tests.fixtures.oidc import ProviderProcess

try:
    from playwright.async_api import expect
except ImportError:  # test_browser's fixture skips without playwright
    pass

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("edge_provider")]

# test_browser's fixtures, used here by name.
browser = browser_tests.browser
open_tab = browser_tests.open_tab


@pytest.fixture(scope="module")
def edge_provider(edge: Edge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderProcess]:
    """The provider the edge's backends are configured with (tests/deploy/conftest.py)."""
    logs: Path = tmp_path_factory.mktemp("edge-oidc")
    callback = f"{edge.base_url}/api/v1/auth/oidc/test/callback"
    running = ProviderProcess([callback], logs / "provider.log", port=edge.oidc_port)
    running.start()
    yield running
    running.stop()


async def sign_in_at_provider(tab: Tab, login: str) -> None:
    """Click the SPA's button, then the provider's own login and consent forms."""
    page = tab.page
    await page.locator("#oidc-login-test").click()
    await page.wait_for_url("http://127.0.0.1:*/interaction/*", timeout=TIMEOUT_MS)
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill("any password")
    await page.locator("button[type=submit]").click()
    await page.wait_for_url("http://127.0.0.1:*/interaction/*", timeout=TIMEOUT_MS)  # consent
    await page.locator("button[type=submit]").click()
    await page.wait_for_url(f"{tab.edge.base_url}/**", timeout=TIMEOUT_MS)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)


async def test_sign_in_with_a_provider_and_see_the_identity(open_tab) -> None:
    tab: Tab = await open_tab()
    local = unique("c")
    email = f"{local}@example.com"
    await expect(tab.page.locator("#oidc-login-test")).to_have_text("Sign in with test")
    await sign_in_at_provider(tab, email)
    await expect(tab.page.locator("#whoami")).to_contain_text(local, timeout=TIMEOUT_MS)
    await expect(tab.page.locator("#app")).to_be_visible()
    session = await tab.cookie(SESSION_COOKIE)
    assert session is not None
    assert session["httpOnly"] is True
    # The pending sign-in's cookie is gone once used.
    assert await tab.cookie("__Secure-oidc") is None
    identity = tab.page.locator("#identity-list li")
    await expect(identity).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(identity).to_contain_text(f"test: {email}")
    # Its only way in: unlinking it is refused, and the page says why.
    await identity.locator("button.identity-unlink").click()
    await expect(tab.page.locator("#error")).to_contain_text("only way to log in", timeout=TIMEOUT_MS)
    await expect(identity).to_have_count(1)


async def test_a_refused_sign_in_is_explained(open_tab) -> None:
    # An account has this email already: the provider's identity is not linked to it.
    tab: Tab = await open_tab()
    username = unique("c")
    email = f"{username}@example.com"
    form = tab.page.locator("#register-form")
    await form.locator("[name=email]").fill(email)
    await form.locator("[name=username]").fill(username)
    await form.locator("[name=password]").fill(PASSWORD)
    await form.locator("[type=submit]").click()
    await expect(tab.page.locator("#notice")).not_to_be_empty(timeout=TIMEOUT_MS)
    await sign_in_at_provider(tab, email)
    await expect(tab.page.locator("#error")).to_contain_text("exists already", timeout=TIMEOUT_MS)
    await expect(tab.page.locator("#anon")).to_be_visible()
    assert "error=" not in tab.page.url  # said once, then gone from the address bar
    assert await tab.cookie(SESSION_COOKIE) is None
