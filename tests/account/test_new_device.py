"""API.md section 10: a login from a browser the account was not known on is told to the
account's address, with a single-use "this wasn't me" link that ends that login."""

import asyncio

from tests.account.helpers import API, events, token_in
from tests.fixtures.client import login, register

REPORT = f"{API}/auth/report-login"


async def test_a_new_device_is_noticed_once_and_a_known_one_is_not(mail_client, inbox):
    browser = mail_client()
    account = await register(browser)
    await login(browser, account)
    first = await inbox.wait_for(account.email, event="new_device_login")
    assert "/report-login" in first.get_content() or "Use this token" in first.get_content()

    await login(browser, account)  # the same browser: its device cookie is known now
    await login(mail_client(), account)  # another browser: noticed
    deadline = asyncio.get_running_loop().time() + 10
    while len([m for m in inbox.to(account.email) if m["X-Security-Event"] == "new_device_login"]) < 2:
        assert asyncio.get_running_loop().time() < deadline, "no second new_device_login notice"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # and no third, for the known browser's login
    notices = [m for m in inbox.to(account.email) if m["X-Security-Event"] == "new_device_login"]
    assert len(notices) == 2
    assert (await events(browser)).count("new_device_login") == 2


async def test_this_wasnt_me_ends_that_login_and_only_that_one(mail_client, inbox):
    owner = mail_client()
    account = await register(owner)
    await login(owner, account)
    await inbox.wait_for(account.email, event="new_device_login")

    intruder = mail_client()
    await login(intruder, account)
    # The intruder's notice is the newest one.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        notices = [m for m in inbox.to(account.email) if m["X-Security-Event"] == "new_device_login"]
        if len(notices) == 2:
            break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    token = token_in(notices[1])

    anyone = mail_client()  # whoever opens the mail: no session needed
    response = await anyone.post(REPORT, json={"token": token})
    assert response.status_code == 200, response.text
    assert (await intruder.get(f"{API}/users/me")).status_code == 401
    # The intruder's refresh token died with the login.
    assert (await intruder.post(f"{API}/auth/refresh")).status_code == 401
    assert (await owner.get(f"{API}/users/me")).status_code == 200
    assert "login_reported" in await events(owner)

    again = await anyone.post(REPORT, json={"token": token})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_token"


async def test_a_bad_report_token_is_400_and_changes_nothing(mail_client):
    browser = mail_client()
    account = await register(browser)
    await login(browser, account)
    response = await mail_client().post(REPORT, json={"token": "not-a-token"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_token"
    assert (await browser.get(f"{API}/users/me")).status_code == 200
    assert (await mail_client().post(REPORT, json={})).status_code == 422
