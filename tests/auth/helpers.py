"""Reading raw Set-Cookie headers: the jar hides the attributes the contract is about."""

import httpx


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Cookie name -> the raw Set-Cookie header that set it."""
    headers = response.headers.get_list("set-cookie")
    return {header.split("=", 1)[0]: header for header in headers}


def attributes(header: str) -> dict[str, str]:
    """Lower-cased attribute name -> value ("" for flags), without the name=value pair."""
    parts = [part.strip() for part in header.split(";")[1:]]
    out = {}
    for part in parts:
        key, _, value = part.partition("=")
        out[key.lower()] = value
    return out
