"""The SPA's account section (API.md sections 4, 10 and 11) in headless Chromium through
Caddy over https: sessions, the security log, the email change's pending state, personal
access tokens (one then used by a script), the export download and the deletion.

The browser, the tabs and their console-error check are test_browser.py's.
"""

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.deploy import test_browser as browser_tests
from tests.deploy.test_browser import TIMEOUT_MS, Tab
from tests.deploy.test_browser_mfa import expect_logged_in, submit_password, through_reauth
from tests.fixtures.client import API, PASSWORD, unique

try:
    from playwright.async_api import expect
except ImportError:  # test_browser's fixture skips without playwright
    pass

pytestmark = pytest.mark.slow

browser = browser_tests.browser
open_tab = browser_tests.open_tab

TOKEN = re.compile(r"cspat_[0-9A-Za-z]{49}")


async def test_the_account_section_lists_sessions_and_the_security_log(open_tab) -> None:
    first: Tab = await open_tab()
    username = await first.register_and_log_in()
    page = first.page
    await expect(page.locator("#session-list li")).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(page.locator("#session-list li")).to_contain_text("(this browser)")
    await expect(page.locator("#event-list li[data-event=login]")).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(page.locator("#event-list li[data-event=new_device_login]")).to_have_count(1)

    # A second browser logs in as the same user; the first ends that session from its list.
    second: Tab = await open_tab()
    await submit_password(second, username)
    await expect_logged_in(second, username)
    await page.reload()
    await expect(page.locator("#session-list li")).to_have_count(2, timeout=TIMEOUT_MS)
    other = page.locator("#session-list li", has_not_text="(this browser)")
    await other.locator(".session-end").click()
    await expect(page.locator("#session-list li")).to_have_count(1, timeout=TIMEOUT_MS)
    assert await second.api_status(f"{API}/users/me") == 401


async def test_an_email_change_shows_its_pending_state(open_tab) -> None:
    tab: Tab = await open_tab()
    await tab.register_and_log_in()
    page = tab.page
    new_address = f"{unique('moved')}@example.com"
    form = page.locator("#email-form")
    await form.locator("[name=email]").fill(new_address)
    await form.locator("[name=current_password]").fill(PASSWORD)
    await form.locator("[type=submit]").click()
    await expect(page.locator("#email-pending")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#email-pending-address")).to_have_text(new_address)
    # Nothing changed yet: the address is the old one until the link is opened.
    await expect(page.locator("#email-current")).not_to_have_text(new_address)
    await expect(page.locator("#event-list li[data-event=email_change_requested]")).to_have_count(1)


async def test_a_token_made_on_the_page_works_for_a_script_until_deleted_there(open_tab) -> None:
    tab: Tab = await open_tab()
    await tab.register_and_log_in()
    page = tab.page
    form = page.locator("#token-form")
    await form.locator("[name=name]").fill("nightly backup")
    await form.locator("[name='profile:read']").check()
    await form.locator("[type=submit]").click()
    await through_reauth(tab, page.locator("#token-new"))
    token = (await page.locator("#token-value").inner_text()).strip()
    assert TOKEN.fullmatch(token), token
    row = page.locator("#token-list li", has_text="nightly backup")
    await expect(row).to_contain_text("items:read")
    await expect(row).to_contain_text("last used never")
    await page.locator("#token-saved").click()
    await expect(page.locator("#token-new")).to_be_hidden()
    assert token not in await page.content()  # shown once, then gone from the page

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=tab.edge.base_url, verify=tab.edge.ssl_context()) as script:
        assert (await script.get(f"{API}/users/me", headers=headers)).status_code == 200
        assert (await script.get(f"{API}/items", headers=headers)).status_code == 200
        await row.locator(".token-delete").click()
        await expect(page.locator("#token-empty")).to_be_visible(timeout=TIMEOUT_MS)
        refused = await script.get(f"{API}/users/me", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_token"
    await expect(page.locator("#event-list li[data-event=token_revoked]")).to_have_count(1)


async def test_the_export_downloads_the_users_data_and_deletion_ends_the_account(open_tab) -> None:
    tab: Tab = await open_tab()
    username = await tab.register_and_log_in()
    page = tab.page
    await tab.create_item(f"kept-{username}")

    async with page.expect_download(timeout=2 * TIMEOUT_MS) as info:
        await page.locator("#export").click()
        await through_reauth(tab, page.locator("#notice", has_text="downloaded"))
    download = await info.value
    assert download.suggested_filename.startswith("account-export-")
    data = json.loads(Path(await download.path()).read_text(encoding="utf-8"))
    assert data["user"]["username"] == username
    assert [item["title"] for item in data["items"]] == [f"kept-{username}"]
    assert "hashed_password" not in json.dumps(data)

    page.once("dialog", lambda dialog: dialog.accept())
    await page.locator("#delete-account").click()
    await through_reauth(tab, page.locator("#anon"))
    await expect(page.locator("#error")).to_contain_text("deleted")
    await submit_password(tab, username)
    await expect(page.locator("#error")).not_to_be_empty(timeout=TIMEOUT_MS)
    await expect(page.locator("#app")).to_be_hidden()
