"""Fixtures for the items tests: a second logged-in user and an admin, each with a client of its own."""

import pytest

from tests.fixtures.client import Account, ApiClient, login, register


@pytest.fixture
async def other_user(make_client) -> tuple[ApiClient, Account]:
    """A second registered, logged-in user, distinct from `user`."""
    client = make_client()
    account = await register(client)
    await login(client, account)
    return client, account


@pytest.fixture
async def admin(make_admin) -> tuple[ApiClient, Account]:
    return await make_admin()
