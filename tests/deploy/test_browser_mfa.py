"""The SPA's second factors, passkeys and re-authentication (API.md section 9) in
headless Chromium through Caddy over https, with Chromium's virtual authenticator (over
CDP) standing in for a platform authenticator with user verification.

The browser, the tabs and their console-error check are test_browser.py's.
"""

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import pyotp
import pytest

from tests.deploy import test_browser as browser_tests
from tests.deploy.conftest import Edge
from tests.deploy.test_browser import TIMEOUT_MS, Tab
from tests.fixtures.client import API, PASSWORD

try:
    from playwright.async_api import CDPSession, Locator, expect
except ImportError:  # test_browser's fixture skips without playwright
    pass

pytestmark = pytest.mark.slow

# test_browser's fixtures, used here by name.
browser = browser_tests.browser
open_tab = browser_tests.open_tab

# A platform authenticator that holds discoverable credentials and verifies its user
# without a prompt.
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}
TOTP_STEP = 30
# REAUTH_MAX_AGE_SECONDS a test may wait out (the default, 300, is too long to wait).
WAITABLE_REAUTH_MAX_AGE = 30


@dataclass
class Authenticator:
    cdp: "CDPSession"
    id: str

    async def credentials(self) -> list[dict[str, object]]:
        result = await self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})
        return list(result["credentials"])


async def add_authenticator(tab: Tab) -> Authenticator:
    cdp = await tab.context.new_cdp_session(tab.page)
    await cdp.send("WebAuthn.enable")
    result = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return Authenticator(cdp, result["authenticatorId"])


def calls(tab: Tab, method: str, path: str) -> int:
    """How many `method` requests for `path` (under /api/v1) the page has made."""
    return sum(
        1
        for request in tab.requests
        if request.split(" ", 1)[0] == method and urlparse(request.split(" ", 1)[1]).path == API + path
    )


async def submit_password(tab: Tab, username: str) -> None:
    login = tab.page.locator("#login-form")
    await login.locator("[name=username]").fill(username)
    await login.locator("[name=password]").fill(PASSWORD)
    await login.locator("[type=submit]").click()


async def expect_logged_in(tab: Tab, username: str) -> None:
    await expect(tab.page.locator("#whoami")).to_contain_text(username, timeout=TIMEOUT_MS)
    await expect(tab.page.locator("#app")).to_be_visible()
    await expect(tab.page.locator("#mfa-section")).to_be_visible()


async def log_out(tab: Tab) -> None:
    await tab.page.locator("#logout").click()
    await expect(tab.page.locator("#anon")).to_be_visible(timeout=TIMEOUT_MS)


async def through_reauth(tab: Tab, done: "Locator") -> None:
    """Waits for a sensitive action's result. Should the edge's REAUTH_MAX_AGE_SECONDS be
    shorter than the test's pace, the page asks to re-authenticate first: the password
    answers it (for a user without a second factor)."""
    prompt = tab.page.locator("#reauth-form")
    await expect(done.or_(prompt).first).to_be_visible(timeout=TIMEOUT_MS)
    if await prompt.is_visible():
        await tab.page.locator("#reauth-password").fill(PASSWORD)
        await tab.page.locator("#reauth-submit").click()
    await expect(done.first).to_be_visible(timeout=TIMEOUT_MS)


async def add_passkey(tab: Tab, name: str) -> dict[str, object]:
    """Adds a passkey from the security section; returns the API's answer."""
    page = tab.page
    await page.locator("#passkey-name").fill(name)
    async with page.expect_response(
        lambda r: urlparse(r.url).path == f"{API}/users/me/passkeys" and r.request.method == "POST",
        timeout=2 * TIMEOUT_MS,
    ) as info:
        await page.locator("#passkey-add").click()
        await through_reauth(tab, page.locator("#passkey-list li", has_text=name))
    response = await info.value
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def recovery_codes_shown(tab: Tab) -> list[str]:
    await expect(tab.page.locator("#recovery-codes")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(tab.page.locator("#recovery-codes li")).to_have_count(10)
    return [code.strip() for code in await tab.page.locator("#recovery-codes li").all_inner_texts()]


async def dismiss_recovery_codes(tab: Tab) -> None:
    await tab.page.locator("#recovery-saved").click()
    await expect(tab.page.locator("#recovery-codes")).to_be_hidden()
    # Shown once: not left in the page either.
    await expect(tab.page.locator("#recovery-codes li")).to_have_count(0)


def wrong_code(totp: pyotp.TOTP) -> str:
    """A six-digit code no step around now accepts."""
    now = time.time()
    valid = {totp.at(now + offset * TOTP_STEP) for offset in (-2, -1, 0, 1, 2)}
    return next(code for code in (f"{n:06d}" for n in range(123456, 1_000_000, 7919)) if code not in valid)


async def totp_code_after(totp: pyotp.TOTP, used_step: int) -> str:
    """The current code, once the clock is past the step last used (API.md section 9: a
    step is accepted once per user)."""
    while int(time.time() // TOTP_STEP) <= used_step:
        await asyncio.sleep(0.5)
    return totp.now()


# ---------------------------------------------------------------------- passkeys


async def test_a_passkey_added_in_the_security_section_logs_in_without_a_password(open_tab) -> None:
    tab: Tab = await open_tab()
    page = tab.page
    authenticator = await add_authenticator(tab)
    username = await tab.register_and_log_in()
    await expect(page.locator("#totp-status")).to_have_text("off", timeout=TIMEOUT_MS)
    await expect(page.locator("#passkey-empty")).to_be_visible()

    added = await add_passkey(tab, "Test laptop")
    assert added["name"] == "Test laptop"
    row = page.locator("#passkey-list li", has_text="Test laptop")
    await expect(row).to_have_count(1)
    await expect(row.locator(".meta")).to_contain_text("last used never")
    await expect(page.locator("#passkey-empty")).to_be_hidden()
    # The first second factor comes with recovery codes, shown this once.
    assert len(added.get("recovery_codes") or []) == 10, added
    assert await recovery_codes_shown(tab) == added["recovery_codes"]
    await dismiss_recovery_codes(tab)
    await expect(page.locator("#recovery-left")).to_have_text("10")
    # A discoverable credential, kept by the authenticator.
    credentials = await authenticator.credentials()
    assert len(credentials) == 1, credentials
    assert credentials[0]["isResidentCredential"] is True

    await log_out(tab)
    await page.locator("#passkey-login").click()
    await expect_logged_in(tab, username)
    assert calls(tab, "POST", "/auth/passkey/login") == 1
    await expect(row.locator(".meta")).not_to_contain_text("last used never", timeout=TIMEOUT_MS)

    # The password alone is no longer enough: the second step offers the passkey.
    await log_out(tab)
    await submit_password(tab, username)
    await expect(page.locator("#mfa-step-form")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#anon")).to_be_hidden()
    await expect(page.locator("#mfa-passkey")).to_be_visible()
    await expect(page.locator("#mfa-method option")).to_have_text(["Recovery code"])
    await page.locator("#mfa-passkey").click()
    await expect_logged_in(tab, username)
    await expect(page.locator("#mfa-step")).to_be_hidden()

    await row.locator(".passkey-remove").click()
    await through_reauth(tab, page.locator("#passkey-empty"))
    await expect(page.locator("#passkey-list li")).to_have_count(0)


# -------------------------------------------------------------------------- TOTP


async def test_totp_enrolment_shows_recovery_codes_and_login_asks_for_a_code(open_tab) -> None:
    tab: Tab = await open_tab()
    page = tab.page
    username = await tab.register_and_log_in()
    await expect(page.locator("#totp-enrol")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#recovery-regenerate")).to_be_hidden()

    async with page.expect_response(
        lambda r: urlparse(r.url).path == f"{API}/users/me/mfa/totp" and r.request.method == "POST" and r.ok,
        timeout=2 * TIMEOUT_MS,
    ) as info:
        await page.locator("#totp-enrol").click()
        await through_reauth(tab, page.locator("#totp-setup"))
    enrolment = await (await info.value).json()
    await expect(page.locator("#totp-secret")).to_have_text(enrolment["secret"])
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    await expect(page.locator("#totp-link")).to_have_attribute("href", enrolment["otpauth_uri"])
    if "qr_svg" in enrolment:
        # The server's SVG, parsed as SVG and in the page (the CSP check is the tab's).
        await expect(page.locator("#totp-qr svg")).to_have_count(1)
        assert await page.locator("#totp-qr svg path, #totp-qr svg rect").count() > 0
        assert await page.locator("#totp-qr script, #totp-qr [style]").count() == 0
    totp = pyotp.TOTP(secret)

    now = time.time()
    used_step = int(now // TOTP_STEP)
    await page.locator("#totp-code").fill(totp.at(now))
    await page.locator("#totp-confirm").click()
    await through_reauth(tab, page.locator("#recovery-codes"))
    codes = await recovery_codes_shown(tab)
    assert len(set(codes)) == 10
    await expect(page.locator("#totp-status")).to_have_text("on")
    await expect(page.locator("#totp-disable")).to_be_visible()
    await expect(page.locator("#totp-enrol")).to_be_hidden()
    await expect(page.locator("#totp-setup")).to_be_hidden()
    await expect(page.locator("#totp-secret")).to_have_text("")
    await dismiss_recovery_codes(tab)

    # A password login now stops at the second step; a wrong code is refused there.
    await log_out(tab)
    await submit_password(tab, username)
    await expect(page.locator("#mfa-step-form")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#mfa-passkey")).to_be_hidden()
    await expect(page.locator("#mfa-method option")).to_have_text(["Authenticator app code", "Recovery code"])
    await page.locator("#mfa-code").fill(wrong_code(totp))
    await page.locator("#mfa-submit").click()
    await expect(page.locator("#error")).not_to_be_empty(timeout=TIMEOUT_MS)
    await expect(page.locator("#mfa-step-form")).to_be_visible()
    await expect(page.locator("#app")).to_be_hidden()
    # A recovery code works once, typed as people type them.
    await page.locator("#mfa-method").select_option("recovery_code")
    await page.locator("#mfa-code").fill(f" {codes[0].upper()} ")
    await page.locator("#mfa-submit").click()
    await expect_logged_in(tab, username)
    await expect(page.locator("#recovery-left")).to_have_text("9", timeout=TIMEOUT_MS)

    # And the authenticator app's code, from a step not used before.
    await log_out(tab)
    await submit_password(tab, username)
    await expect(page.locator("#mfa-step-form")).to_be_visible(timeout=TIMEOUT_MS)
    await page.locator("#mfa-method").select_option("totp")
    await page.locator("#mfa-code").fill(await totp_code_after(totp, used_step))
    await page.locator("#mfa-submit").click()
    await expect_logged_in(tab, username)
    await expect(page.locator("#totp-status")).to_have_text("on", timeout=TIMEOUT_MS)
    assert calls(tab, "POST", "/auth/mfa/verify") == 3


# ------------------------------------------------------------ re-authentication
#
# The edge's backends run with a short REAUTH_MAX_AGE_SECONDS (tests/deploy/conftest.py):
# each test waits one out, and the refusals the page handles are the API's own.


async def wait_until_stale(edge: Edge) -> None:
    """Until a session made or re-authenticated now is no longer fresh (API.md section 9)."""
    max_age = int(edge.backends[0].env.get("REAUTH_MAX_AGE_SECONDS", "300"))
    assert max_age <= WAITABLE_REAUTH_MAX_AGE, f"the edge's sessions stay fresh for {max_age} s"
    await asyncio.sleep(max_age + 1)


async def test_a_reauthentication_prompt_with_the_password_lets_the_action_through(
    open_tab, edge: Edge
) -> None:
    tab: Tab = await open_tab()
    page = tab.page
    await tab.register_and_log_in()
    dialog = page.locator("#reauth-form")
    await wait_until_stale(edge)

    # Cancelled: the action is not done, and says so.
    await page.locator("#totp-enrol").click()
    await expect(dialog).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#reauth-password")).to_be_visible()
    await expect(page.locator("#reauth-code")).to_be_hidden()
    await expect(page.locator("#reauth-passkey")).to_be_hidden()
    await page.locator("#reauth-cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#error")).to_contain_text("Not done", timeout=TIMEOUT_MS)
    await expect(page.locator("#totp-setup")).to_be_hidden()
    await expect(page.locator("#totp-enrol")).to_be_enabled()

    # A wrong password keeps the prompt open; the right one lets the action through.
    await page.locator("#totp-enrol").click()
    await expect(dialog).to_be_visible(timeout=TIMEOUT_MS)
    await page.locator("#reauth-password").fill(PASSWORD + "-wrong")
    await page.locator("#reauth-submit").click()
    await expect(page.locator("#reauth-error")).not_to_be_empty(timeout=TIMEOUT_MS)
    await expect(dialog).to_be_visible()
    await page.locator("#reauth-password").fill(PASSWORD)
    await page.locator("#reauth-submit").click()
    await expect(dialog).to_be_hidden(timeout=TIMEOUT_MS)
    await expect(page.locator("#totp-setup")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#totp-secret")).not_to_be_empty()
    await expect(page.locator("#error")).to_be_empty()
    # Two refused tries and the one retried after the re-authentication.
    assert calls(tab, "POST", "/users/me/mfa/totp") == 3
    assert calls(tab, "POST", "/auth/reauthenticate") == 2


async def test_a_reauthentication_prompt_with_a_passkey_lets_the_action_through(open_tab, edge: Edge) -> None:
    tab: Tab = await open_tab()
    page = tab.page
    await add_authenticator(tab)
    await tab.register_and_log_in()
    first = (await add_passkey(tab, "Phone")).get("recovery_codes") or []
    await dismiss_recovery_codes(tab)
    await wait_until_stale(edge)  # the passkey made the session fresh (aal 2) just now

    await page.locator("#recovery-regenerate").click()
    await expect(page.locator("#reauth-form")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#reauth-password")).to_be_hidden()
    await expect(page.locator("#reauth-method option")).to_have_text(["Recovery code"])
    await page.locator("#reauth-passkey").click()
    await expect(page.locator("#reauth-form")).to_be_hidden(timeout=TIMEOUT_MS)
    regenerated = await recovery_codes_shown(tab)
    assert not set(regenerated) & set(first)
    assert calls(tab, "POST", "/auth/reauthenticate/webauthn/options") == 1
    assert calls(tab, "POST", "/auth/reauthenticate") == 1
    assert calls(tab, "POST", "/users/me/mfa/recovery-codes") == 2


async def test_a_stale_totp_session_reauthenticates_with_a_recovery_code(open_tab, edge: Edge) -> None:
    tab: Tab = await open_tab()
    page = tab.page
    await tab.register_and_log_in()
    dialog = page.locator("#reauth-form")

    # Without a second factor: the password.
    await wait_until_stale(edge)
    await page.locator("#totp-enrol").click()
    await expect(dialog).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#reauth-password")).to_be_visible()
    await expect(page.locator("#reauth-code")).to_be_hidden()
    await page.locator("#reauth-password").fill(PASSWORD)
    await page.locator("#reauth-submit").click()
    await expect(dialog).to_be_hidden(timeout=TIMEOUT_MS)
    await expect(page.locator("#totp-secret")).not_to_be_empty(timeout=TIMEOUT_MS)
    totp = pyotp.TOTP((await page.locator("#totp-secret").inner_text()).strip())
    await page.locator("#totp-code").fill(totp.now())
    await page.locator("#totp-confirm").click()
    codes = await recovery_codes_shown(tab)
    await dismiss_recovery_codes(tab)

    # With one: a second factor, not the password (a recovery code here).
    await wait_until_stale(edge)
    await page.locator("#recovery-regenerate").click()
    await expect(dialog).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#reauth-password")).to_be_hidden()
    await page.locator("#reauth-method").select_option("recovery_code")
    await page.locator("#reauth-code").fill(codes[0])
    await page.locator("#reauth-submit").click()
    await expect(dialog).to_be_hidden(timeout=TIMEOUT_MS)
    assert not set(await recovery_codes_shown(tab)) & set(codes)
    assert calls(tab, "POST", "/users/me/mfa/recovery-codes") == 2
