"""Signing in with a provider from a test's side: the authorize redirect, the provider's
forms (tests/fixtures/oidc.py), and the callback, each step visible to the test."""

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.db import SESSIONMAKER
from app.models import OidcIdentity, User
from app.state import state_of
from tests.fixtures.client import API, ApiClient
from tests.fixtures.oidc import at_provider

OIDC = f"{API}/auth/oidc"


def new_email(prefix: str = "o") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}@example.com"


async def authorize(client: ApiClient, provider: str = "test", **params: str) -> httpx.Response:
    return await client.get(f"{OIDC}/{provider}/authorize", params=params)


async def to_callback(client: ApiClient, login: str, provider: str = "test", **params: str) -> str:
    """Authorize, then sign in at the provider as `login`: the callback URL it sends back."""
    started = await authorize(client, provider, **params)
    assert started.status_code == 302, started.text
    return await at_provider(client, started.headers["location"], login)


async def sign_in(client: ApiClient, login: str, provider: str = "test", **params: str) -> httpx.Response:
    """The whole flow: our callback's answer (a 302)."""
    callback = await to_callback(client, login, provider, **params)
    response = await client.get(callback)
    assert response.status_code == 302, response.text
    return response


def forget_provider_login(client: ApiClient) -> None:
    """Drop the provider's cookies: the next sign-in there asks who you are again."""
    for cookie in list(client.cookies.jar):
        if cookie.domain.startswith("127.0.0.1"):
            client.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)


def error_of(response: httpx.Response) -> str | None:
    location = response.headers["location"]
    prefix = "/?error="
    return location[len(prefix) :] if location.startswith(prefix) else None


async def users_with_email(app: FastAPI, email: str) -> list[User]:
    async with state_of(app)[SESSIONMAKER]() as session:
        return list(await session.scalars(select(User).where(func.lower(User.email) == email.lower())))


async def identities_for(app: FastAPI, subject: str) -> list[OidcIdentity]:
    async with state_of(app)[SESSIONMAKER]() as session:
        return list(await session.scalars(select(OidcIdentity).where(OidcIdentity.subject == subject)))


def subject_of(login: str) -> str:
    return login  # provider.mjs: the login is the subject
