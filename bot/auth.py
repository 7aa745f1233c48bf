"""Who is calling: staff sessions (agents, leads, content owners, admins) and the admin API token.

A staff member logs in with login + password and gets an opaque session token, kept in Redis and
sent back as a cookie (browser) or a bearer token (API). The admin token from settings acts as admin.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from fastapi import HTTPException, Request, status

SESSION_COOKIE = "nd_session"
SESSION_TTL_S = 12 * 3600
ROLES = ("agent", "lead", "content_owner", "admin")


@dataclass(frozen=True)
class StaffUser:
    login: str
    display_name: str
    roles: tuple[str, ...]
    agent_id: int | None = None
    skills: dict[str, list[str]] = field(default_factory=dict)

    def has(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)


ADMIN = StaffUser(login="admin-token", display_name="Admin (API token)", roles=("admin",))


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)


class StaffSessions:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def open(self, user: StaffUser) -> str:
        token = secrets.token_urlsafe(32)
        data = {"login": user.login, "display_name": user.display_name, "roles": list(user.roles),
                "agent_id": user.agent_id, "skills": user.skills}
        await self._redis.set(f"nd:staff:{token}", json.dumps(data), ex=SESSION_TTL_S)
        return token

    async def get(self, token: str) -> StaffUser | None:
        raw = await self._redis.get(f"nd:staff:{token}")
        if not raw:
            return None
        data = json.loads(raw)
        return StaffUser(login=data["login"], display_name=data["display_name"], roles=tuple(data["roles"]),
                         agent_id=data.get("agent_id"), skills=data.get("skills") or {})

    async def close(self, token: str) -> None:
        await self._redis.delete(f"nd:staff:{token}")


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(SESSION_COOKIE) or request.query_params.get("session") or None


async def current_user(request: Request) -> StaffUser:
    token = request_token(request)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first (or send the admin API token as a bearer token)")
    admin_token: str = request.app.state.settings.admin_token
    if admin_token and hmac.compare_digest(token, admin_token):
        return ADMIN
    user = await request.app.state.staff_sessions.get(token)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "your session has expired; log in again")
    return user


def require(*roles: str):  # type: ignore[no-untyped-def]
    """A dependency that lets through staff with any of these roles (admins always)."""

    async def check(request: Request) -> StaffUser:
        user = await current_user(request)
        if not user.has(*roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the role {' or '.join(roles)}")
        return user

    return check
