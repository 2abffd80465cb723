"""The Cookie header as an attacker sends it (security review, findings 1 and 7): too
large, pathological to unquote, or split differently by two parsers."""

import time

import pytest

from app.cookie_header import parse
from tests.fixtures.client import API, login, register, unique

BACKSLASHES = '"' + "\\\\" * 24_000 + '"'  # 48 KB: froze a worker for 4.2 s (CVE-2024-7592)


async def test_a_48_kb_cookie_of_escaped_backslashes_is_refused_before_parsing(client):
    response = await client.get(f"{API}/items", headers={"Cookie": f"__Host-session={BACKSLASHES}"})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_headers_too_large"
    assert response.headers["connection"] == "close"
    assert response.headers["cache-control"] == "no-store"  # it carried a session cookie
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("header", ["Cookie", "X-Anything"])
async def test_any_header_past_8_kib_is_refused_and_the_sum_past_16_kib(client, header):
    assert (await client.get("/healthz", headers={header: "a" * 9000})).status_code == 431
    many = {f"X-Part-{n}": "a" * 4000 for n in range(5)}  # each fine, 20 KB in all
    assert (await client.get("/healthz", headers=many)).status_code == 431
    assert (await client.get("/healthz", headers={header: "a" * 4000})).status_code == 200


def test_the_parser_is_linear_on_pathological_input():
    # Quadratic unquoting takes 256 times as long on 16 times the input; linear, 16.
    # Best of several runs each, and a wide margin, so that a busy machine cannot decide.
    def best(size: int) -> float:
        header = "a=" + '"' + "\\\\" * size + '"; ' + "b=c; " * (size // 8)
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            parsed = parse(header)
            runs.append(time.perf_counter() - started)
        assert not parsed.clean
        assert parsed.get("b") is None  # sent many times: ambiguous, read as absent
        return min(runs)

    small, large = best(64 * 1024), best(1024 * 1024)
    assert large < small * 64, (small, large)


async def test_a_cookie_pair_two_parsers_split_differently_is_refused(make_client):
    # SimpleCookie stopped at x="a\" and saw no session (so the anonymous CSRF token
    # passed); Starlette's parser read on and authenticated dave: an item made as dave.
    anonymous, dave = make_client(), make_client()
    await login(dave, await register(dave))
    csrf = await anonymous.csrf_token()
    title = unique("planted")
    cookie = f'__Host-csrftoken={csrf}; x="a\\"; __Host-session={dave.session_token}'
    response = await anonymous.post(
        f"{API}/items",
        json={"title": title},
        headers={"Cookie": cookie, "X-CSRF-Token": csrf},
        csrf=False,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert response.headers["cache-control"] == "no-store"
    listed = (await dave.get(f"{API}/items", params={"q": title})).json()
    assert listed["total"] == 0
