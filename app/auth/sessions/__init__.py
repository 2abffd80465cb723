"""Server-side sessions: Redis in deployment, a dict on the embedded default.

A *login* (what users see as "a session" and can list and revoke) starts when a
password is typed and lasts at most REFRESH_TOKEN_EXPIRE_DAYS. It owns exactly one
live session token (the cookie every request carries, ACCESS_TOKEN_EXPIRE_MINUTES)
and one live refresh token. Refreshing rotates both. A refresh token names its login and
its generation, with a MAC (types.RefreshTokens), so presenting an earlier generation
again is recognised as reuse (RFC 9700 4.14.2) from the login's own record, with nothing
kept per rotation: within REFRESH_REUSE_GRACE_SECONDS of the last rotation it is a second
tab and changes nothing; later it revokes the whole login, and no other login of the user.
A login rotates at most REFRESH_RATE_LIMIT times per window; a user holds at most
MAX_LOGINS_PER_USER logins (the next ends the oldest).

The Redis key layout (this is the one place it is written down; every key starts with
REDIS_KEY_PREFIX):

  s:<sha256(session token)>  hash    uid, fam                     TTL = session lifetime
  f:<login id>               hash    the login: uid, created, seen, ua, ip, exp (its end),
                                     s (its session's hash), g (refresh generation),
                                     rt (last rotation), rc, rw (rotations in the window
                                     that began at rw), aal, amr, at (its assurance and
                                     auth time, API.md section 9)  TTL = rest of the login
  uf:<user id>               set     login ids of the user (revoke all, list)
  u:<user id>                string  JSON snapshot of the user (the hot-path cache)
  rl...                      the rate limiter's windows (app/auth/ratelimit.py)
  mfa:<sha256(cookie)>       hash    a pending second step or passkey login (app/auth/mfa/
                                     challenges.py)               TTL = 300 s
  wac:<purpose>:<login id>   string  a WebAuthn challenge bound to a session, single use
  live:items, live:revoked   pub/sub channels of the live updates (app/live/broadcast.py)

Redis never holds a usable token: session cookies are only ever hashed, and refresh
tokens need the MAC key, which is not there. The login id is a random value, the one
shown to users in their sessions list. Every change is one Lua script
(scripts/), so concurrent refreshes of one token cannot both succeed. The scripts
build key names from the prefix, so they assume one Redis server (not Cluster).

An authenticated request costs one round trip (app/redis.py AutoPipeline): the read
script checks the session and its login, bumps last-seen at most once a minute and
returns the user snapshot, which app/auth/cache.py keeps true after every commit.

Live sockets (app/live) belong to a login. Every script that ends logins publishes
their ids on `<prefix>live:revoked` in the same atomic step, whichever process ran
it (a worker, the command line), so that every worker closes their sockets; the
memory store calls its `on_logins_ended` instead. Rotation ends no login.

Modules: types.py (what the store hands out, the `SessionStore` interface), redis_store.py
and memory_store.py (the two stores), lua.py and scripts/ (Redis's scripts), factory.py
(which store a deployment gets).
"""

from typing import Annotated

from fastapi import Depends

from app.auth.sessions.types import SessionStore
from app.state import Key, dependency

SESSION_STORE: Key[SessionStore] = Key("session_store")
StoreDep = Annotated[SessionStore, Depends(dependency(SESSION_STORE))]
