"""Password policy (API.md section 3) and Argon2id hashing off the event loop."""

import gzip
import os
import secrets
from functools import cache
from pathlib import Path

import anyio.to_thread
from fastapi_users.password import PasswordHelper

from app.errors import RETRY_AFTER_SECONDS, AppError, ErrorCode

MIN_LENGTH = 8
MAX_LENGTH = 128
# Containment is only meaningful for words of some length: the local part "a" of
# a@example.com would otherwise forbid every password with an "a" in it.
MIN_CONTEXT_WORD = 3
# Django's list of 20,000 common passwords (BSD licence, see NOTICE), shipped here
# so that the policy never downloads anything at run time.
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt.gz")

password_helper = PasswordHelper()  # Argon2id for new hashes; bcrypt only verified, then upgraded


@cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def password_problem(password: str, *, username: str, email: str) -> str | None:
    """Why `password` is refused, or None. Compared as typed: nothing is stripped or folded
    except for the containment and common-list checks, which ignore case."""
    if len(password) < MIN_LENGTH:
        return f"Password must be at least {MIN_LENGTH} characters long."
    if len(password) > MAX_LENGTH:
        return f"Password must be at most {MAX_LENGTH} characters long."
    folded = password.casefold()
    if len(username) >= MIN_CONTEXT_WORD and username.casefold() in folded:
        return "Password must not contain the username."
    local_part = email.partition("@")[0]
    if len(local_part) >= MIN_CONTEXT_WORD and local_part.casefold() in folded:
        return "Password must not contain the email address."
    if folded.strip() in common_passwords():
        return "Password is too common."
    return None


@cache
def _hashing_slots() -> anyio.CapacityLimiter:
    # argon2-cffi releases the GIL, so a thread keeps each hash off the event loop. But
    # one Argon2id hash (p=4) runs 4 native threads: eight concurrent logins on 2 cores
    # were 32 CPU-bound threads, and the event loop, one runnable thread among them,
    # got ~6% of a core (users/me p99 x28, bench/login_storm.py). Bounding concurrent
    # hashes to half the cores keeps a core for everything else; logins/s did not change,
    # since the CPU was the limit anyway, and waiting logins queue cheaply on the loop.
    return anyio.CapacityLimiter(max(1, (os.cpu_count() or 2) // 2))


# How many hashes may wait per slot (README "Security"): about a second of queue at ~70 ms
# a hash. Past it a burst of logins gets a fast 503 with Retry-After instead of piling up
# behind the slot, each waiting request holding its memory and its client's patience.
WAITING_PER_SLOT = 16


def _slot() -> anyio.CapacityLimiter:
    slots = _hashing_slots()
    if slots.statistics().tasks_waiting >= WAITING_PER_SLOT * int(slots.total_tokens):
        raise AppError(ErrorCode.SERVICE_UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return slots


# Django's convention (contrib/auth/hashers.py, UNUSABLE_PASSWORD_PREFIX): a stored "hash"
# starting with "!" is no hash at all, so no password matches it. Given to users made by a
# sign-in provider (API.md section 11); "forgot password" can still set a real one.
UNUSABLE_PASSWORD_PREFIX = "!"


def unusable_password() -> str:
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(32)


def has_usable_password(hashed: str) -> bool:
    return not hashed.startswith(UNUSABLE_PASSWORD_PREFIX)


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(password_helper.hash, password, limiter=_slot())


async def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """(matches, upgraded hash or None)."""
    if not has_usable_password(hashed):
        # The same work as a wrong password (the library would refuse the format at once).
        await anyio.to_thread.run_sync(
            password_helper.verify_and_update, password, dummy_hash(), limiter=_slot()
        )
        return False, None
    return await anyio.to_thread.run_sync(
        password_helper.verify_and_update, password, hashed, limiter=_slot()
    )


@cache
def dummy_hash() -> str:
    return password_helper.hash("timing-parity-for-unknown-users")
