"""The app's services: one typed state object per app, and the one place that reads it.

`create_app` and the lifespan (app/main.py) put every service of the app in its `State`,
each under a typed `Key` (the idea of aiohttp's `AppKey`): `state[SESSION_STORE]` is a
`SessionStore` to mypy and to the reader. Dependencies read them back through
`state_of()`, or as `Annotated` aliases built with `dependency()`; nothing else touches
`app.state`.

Each key is declared by the package that owns the service's type (`SESSION_STORE` in
app/auth/sessions, `HUB` in app/live...), so the state itself knows no domain: a dataclass
naming every service's type would import every package, and every package that reads a
service would import it back, a cycle through the middle of the app.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from app.config import Settings

T = TypeVar("T")


class Key(Generic[T]):
    """The typed name of one service in the app's state."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Key({self.name!r})"


class State:
    """Every service of one app, each under its key. Built once by `create_app` (what the
    middleware needs) and the lifespan (what needs the event loop)."""

    __slots__ = ("_services",)

    def __init__(self) -> None:
        self._services: dict[Key[Any], Any] = {}

    def __setitem__(self, key: Key[T], value: T) -> None:
        self._services[key] = value

    def __getitem__(self, key: Key[T]) -> T:
        try:
            return self._services[key]  # type: ignore[no-any-return]
        except KeyError:
            raise LookupError(f"{key.name} is not in the app's state (is its lifespan running?)") from None


SETTINGS: Key[Settings] = Key("settings")
STARTED_AT: Key[float] = Key("started_at")  # time.monotonic() when the lifespan began


def state_of(owner: HTTPConnection | Starlette) -> State:
    """The state of the app serving `owner` (a request or WebSocket), or of the app itself."""
    app = owner if isinstance(owner, Starlette) else owner.app
    return app.state.services  # type: ignore[no-any-return]


def attach(app: Starlette, settings: Settings) -> State:
    """A new state for `app`, with its settings (create_app)."""
    state = State()
    state[SETTINGS] = settings
    app.state.services = state
    return state


def mark_started(app: Starlette) -> None:
    state_of(app)[STARTED_AT] = time.monotonic()


def dependency(key: Key[T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A FastAPI dependency returning the service under `key`. Async: FastAPI would run a
    plain function in its thread pool, a cost on every request for a dictionary lookup."""

    async def read(conn: HTTPConnection) -> T:
        return state_of(conn)[key]

    read.__name__ = f"get_{key.name}"
    return read
