"""API.md section 3: the device cookie, OWASP's defence against account lockout. A login from
a browser this account has logged in with is exempt from the per-account limit (still
counted per address and per device cookie); a guesser without one locks out only guessers."""

from app.auth.cookies import COOKIES
from app.state import state_of
from tests.auth.test_rate_limits import (
    LOGIN_LIMIT,
    Stack,
    address,
    assert_failed,
    assert_rate_limited,
    attempt,
)
from tests.fixtures.client import ApiClient, register

DEVICE_MAX_AGE = 400 * 24 * 3600


def device_header(response) -> str | None:
    return next((h for h in response.headers.get_list("set-cookie") if h.startswith("__Host-device=")), None)


async def logged_in(stack: Stack, app, ip: str, account) -> ApiClient:
    client = await stack.client(app, ip)
    response = await attempt(client, account.username, account.password)
    assert response.status_code == 200, response.text
    return client


async def test_a_login_sets_the_device_cookie_and_a_later_login_keeps_it(stack: Stack):
    app = await stack.app()
    client = await stack.client(app, address(1))
    account = await register(client)

    first = await attempt(client, account.username, account.password)
    assert first.status_code == 200, first.text
    header = device_header(first)
    assert header is not None, first.headers.get_list("set-cookie")
    attributes = {part.strip() for part in header.split(";")[1:]}
    assert attributes == {"HttpOnly", f"Max-Age={DEVICE_MAX_AGE}", "Path=/", "SameSite=Strict", "Secure"}
    value = header.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 random bits, and a signature

    again = await attempt(client, account.username, account.password)
    assert again.status_code == 200
    assert device_header(again) is None  # kept: the browser's cookie is already known
    assert client.cookies.get(state_of(app)[COOKIES].device) == value
    # Logging out does not forget the browser.
    assert (await client.post("/api/v1/auth/logout")).status_code == 200
    assert client.cookies.get(state_of(app)[COOKIES].device) == value


async def test_the_owner_on_a_known_device_logs_in_while_a_guesser_has_locked_the_account(stack: Stack):
    app = await stack.app()
    account = await register(await stack.client(app, address(200)))
    owner = await logged_in(stack, app, address(201), account)  # the owner's browser, known now

    # A guesser from many addresses spends the rest of the account's budget (the owner's
    # first login, from a browser not known yet, counted in it).
    for n in range(LOGIN_LIMIT - 1):
        assert_failed(await attempt(await stack.client(app, address(n)), account.username))
    assert_rate_limited(await attempt(await stack.client(app, address(50)), account.username), 60)
    # The right password without the device cookie is locked out as well...
    assert_rate_limited(
        await attempt(await stack.client(app, address(51)), account.username, account.password), 60
    )

    # ...but the owner's browser is not.
    response = await attempt(owner, account.username, account.password)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == account.id


async def test_a_known_device_is_still_counted_per_device_cookie(stack: Stack):
    app = await stack.app()
    account = await register(await stack.client(app, address(200)))
    owner = await logged_in(stack, app, address(201), account)
    cookie = owner.cookies.get(state_of(app)[COOKIES].device)

    # The device cookie copied to other addresses (a thief with the cookie, not the password).
    for n in range(LOGIN_LIMIT):  # (the owner's login had no device cookie yet: not counted)
        thief = await stack.client(app, address(10 + n))
        thief.cookies.set(state_of(app)[COOKIES].device, cookie)
        assert_failed(await attempt(thief, account.username))
    thief = await stack.client(app, address(30))
    thief.cookies.set(state_of(app)[COOKIES].device, cookie)
    assert_rate_limited(await attempt(thief, account.username), 60)


async def test_a_forged_device_cookie_buys_nothing(stack: Stack):
    app = await stack.app()
    account = await register(await stack.client(app, address(200)))
    name = state_of(app)[COOKIES].device
    for n in range(LOGIN_LIMIT):
        assert_failed(await attempt(await stack.client(app, address(n)), account.username))
    forger = await stack.client(app, address(60))
    forger.cookies.set(name, "made-up." + "x" * 40)
    # Not one we issued: the per-account limit applies, even with the right password.
    assert_rate_limited(await attempt(forger, account.username, account.password), 60)


async def test_a_device_cookie_known_for_another_account_does_not_exempt_this_one(stack: Stack):
    app = await stack.app()
    mine = await register(await stack.client(app, address(200)))
    victim = await register(await stack.client(app, address(201)))
    attacker = await logged_in(stack, app, address(202), mine)  # a cookie known for `mine`
    for n in range(LOGIN_LIMIT):
        assert_failed(await attempt(await stack.client(app, address(n)), victim.username))
    assert_rate_limited(await attempt(attacker, victim.username), 60)
