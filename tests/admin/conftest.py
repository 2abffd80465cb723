import pytest

from tests.fixtures.client import Account, ApiClient


@pytest.fixture
async def admin(make_admin) -> tuple[ApiClient, Account]:
    return await make_admin()
