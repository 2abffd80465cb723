"""The Redis store's Lua scripts, read once from scripts/ at import."""

from pathlib import Path

from app.auth.sessions.types import REVOKED_CHANNEL

SCRIPTS = Path(__file__).with_name("scripts")


def script(name: str, *uses: str) -> str:
    """scripts/<name>.lua, after the shared pieces it `uses` (drop, late)."""
    parts = [(SCRIPTS / f"{part}.lua").read_text(encoding="utf-8") for part in (*uses, name)]
    return "\n".join(parts).replace("@REVOKED_CHANNEL@", REVOKED_CHANNEL)


READ = script("read")
CREATE = script("create", "drop", "late")
REFRESH = script("refresh", "drop", "late")
END_LOGIN = script("end_login", "drop")
REVOKE_LOGIN = script("revoke_login", "drop")
REVOKE_USER = script("revoke_user", "drop")
ASSURE = script("assure", "late")
TOKEN = script("token")
