import re
from email.message import EmailMessage

from tests.conftest import ClientFactory
from tests.fixtures.client import Account, ApiClient, login, register

API = "/api/v1"


def token_in(mail: EmailMessage) -> str:
    """The single-use token of a mail: in its link's fragment, or on its own line."""
    body = mail.get_content()
    match = re.search(r"#token=([A-Za-z0-9_\-.]+)|Use this token:\s+(\S+)", body)
    assert match, body
    return match[1] or match[2]


async def logged_in(make: ClientFactory) -> tuple[ApiClient, Account]:
    client = make()
    account = await register(client)
    await login(client, account)
    return client, account


async def events(client: ApiClient) -> list[str]:
    response = await client.get(f"{API}/users/me/security-events?limit=100")
    assert response.status_code == 200, response.text
    return [entry["event"] for entry in response.json()["items"]]
