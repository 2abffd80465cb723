"""What a callback refuses (API.md section 11): a bad, replayed or missing state, a code
that does not exchange, an ID token that does not check out, a provider that is down or
hangs. Each ends in a 302 to `/?error=<code>`, no session, and no user made."""

import asyncio
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from fastapi import FastAPI

from tests.auth.helpers import set_cookies
from tests.fixtures.client import API
from tests.fixtures.oidc import ProviderProcess, at_provider
from tests.oidc.conftest import Browser
from tests.oidc.helpers import OIDC, authorize, error_of, new_email, sign_in, to_callback, users_with_email

BOUND_SECONDS = 5  # API.md section 1: a dependency that hangs is answered within 5 s


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


async def refused(client, app: FastAPI, url: str, email: str, error: str) -> None:
    response = await client.get(url)
    assert response.status_code == 302
    assert error_of(response) == error
    assert "__Host-session" not in set_cookies(response)
    assert (await client.get(f"{API}/users/me")).status_code == 401
    assert await users_with_email(app, email) == []


async def test_a_tampered_state_is_refused(browser: Browser, oidc_app: FastAPI) -> None:
    client, email = browser(), new_email()
    callback = await to_callback(client, email)
    await refused(
        client,
        oidc_app,
        with_query(callback, state="x" + parse_qs(urlsplit(callback).query)["state"][0]),
        email,
        "invalid_state",
    )


async def test_a_replayed_callback_is_refused(browser: Browser, oidc_app: FastAPI) -> None:
    client, email = browser(), new_email()
    callback = await to_callback(client, email, next="/first")
    assert (await client.get(callback)).headers["location"] == "/first"
    other = browser()
    second = await other.get(callback)
    assert error_of(second) == "invalid_state"
    again = await client.get(callback)
    assert error_of(again) == "invalid_state"
    assert len(await users_with_email(oidc_app, email)) == 1


async def test_a_callback_in_another_browser_is_refused(browser: Browser, oidc_app: FastAPI) -> None:
    email = new_email()
    callback = await to_callback(browser(), email)
    await refused(browser(), oidc_app, callback, email, "invalid_state")


async def test_a_callback_without_a_state_is_refused(browser: Browser, oidc_app: FastAPI) -> None:
    client, email = browser(), new_email()
    callback = await to_callback(client, email)
    parts = urlsplit(callback)
    query = {key: values[0] for key, values in parse_qs(parts.query).items() if key != "state"}
    await refused(
        client, oidc_app, urlunsplit(parts._replace(query=urlencode(query))), email, "invalid_state"
    )


async def test_a_code_used_twice_fails_the_exchange(browser: Browser, oidc_app: FastAPI) -> None:
    client, email = browser(), new_email()
    callback = await to_callback(client, email)
    assert error_of(await client.get(callback)) is None  # the first use signs in
    thief = browser()
    started = await authorize(thief)  # a state of the thief's own, with the code it saw
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    response = await thief.get(with_query(callback, state=state))
    assert error_of(response) == "exchange_failed"
    assert (await thief.get(f"{API}/users/me")).status_code == 401
    assert len(await users_with_email(oidc_app, email)) == 1


async def test_a_made_up_code_fails_the_exchange(browser: Browser, oidc_app: FastAPI) -> None:
    client, email = browser(), new_email()
    callback = await to_callback(client, email)
    await refused(client, oidc_app, with_query(callback, code="made-up-code"), email, "exchange_failed")


async def test_a_provider_error_is_access_denied(browser: Browser) -> None:
    client = browser()
    started = await authorize(client)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    response = await client.get(f"{OIDC}/test/callback", params={"error": "access_denied", "state": state})
    assert error_of(response) == "access_denied"


async def test_an_id_token_with_another_nonce_is_refused(browser: Browser, oidc_app: FastAPI) -> None:
    # The authorization request altered on its way to the provider: same state, other nonce.
    client, email = browser(), new_email()
    started = await authorize(client)
    callback = await at_provider(
        client, with_query(started.headers["location"], nonce="another-nonce"), email
    )
    await refused(client, oidc_app, callback, email, "invalid_id_token")


@pytest.mark.parametrize("mode", ["aud", "signature", "expired"])
async def test_a_bad_id_token_is_refused(
    browser: Browser, oidc_app: FastAPI, provider: ProviderProcess, mode: str
) -> None:
    """The provider answers the code with an ID token for another client (aud), signed by
    a key it never published, or expired."""
    client, email = browser(), new_email()
    callback = await to_callback(client, email)
    provider.tamper(callback, mode)
    await refused(client, oidc_app, callback, email, "invalid_id_token")


async def test_a_provider_that_is_down_is_unavailable(browser: Browser) -> None:
    response = await authorize(browser(), "down")
    assert response.status_code == 302
    assert error_of(response) == "provider_unavailable"
    assert "__Secure-oidc" not in set_cookies(response)


async def test_a_provider_that_never_answers_is_unavailable_within_5_seconds(browser: Browser) -> None:
    async with asyncio.timeout(BOUND_SECONDS):
        response = await authorize(browser(), "slow")
    assert error_of(response) == "provider_unavailable"


async def test_a_provider_that_hangs_at_the_exchange_is_unavailable_within_5_seconds(
    browser: Browser, oidc_app: FastAPI, fault_provider: ProviderProcess
) -> None:
    client, email = browser(), new_email()
    callback = await to_callback(client, email, "fault")
    fault_provider.hang()
    try:
        async with asyncio.timeout(BOUND_SECONDS):
            response = await client.get(callback)
    finally:
        fault_provider.resume()
    assert error_of(response) == "provider_unavailable"
    assert await users_with_email(oidc_app, email) == []


async def test_a_provider_gone_at_the_exchange_is_unavailable(
    browser: Browser, oidc_app: FastAPI, fault_provider: ProviderProcess
) -> None:
    client, email = browser(), new_email()
    callback = await to_callback(client, email, "fault")
    fault_provider.stop()
    try:
        await refused(client, oidc_app, callback, email, "provider_unavailable")
    finally:
        fault_provider.start()
    # Back on the same port, with new keys: the next sign-in works.
    assert error_of(await sign_in(browser(), new_email(), "fault")) is None


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "evil", "/\t/evil.example"]
)
async def test_next_to_another_site_is_ignored(browser: Browser, target: str) -> None:
    response = await sign_in(browser(), new_email(), next=target)
    assert response.headers["location"] == "/"


async def test_an_unknown_provider_is_not_found(browser: Browser) -> None:
    client = browser()
    for path in ("nope/authorize", "nope/callback?code=x&state=y"):
        response = await client.get(f"{OIDC}/{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
