"""Users, passwords and tokens: who may use the dashboard when ENABLE_AUTH is on.

Passwords are stored as salted scrypt hashes (hashed off the event loop). Tokens are JWTs (HS256,
pyjwt) signed with DASHBOARD_SECRET, or with a secret generated once and kept in the data dir
with 0600 permissions. Logging out revokes a token's id in SQLite, so it stays revoked after a
restart. Repeated failed logins for a user or an address lock them out for a growing time.
Secrets never appear in logs or error messages.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import jwt

from ..errors import ApiError
from ..store import Store

log = logging.getLogger("dashboard.auth")

ROLES = ("administrator", "viewer")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
FAILURES_BEFORE_LOCKOUT = 5
FAILURE_WINDOW = 15 * 60
MAX_LOCKOUT = 15 * 60


def hash_password(password: str) -> str:
    """A salted scrypt hash, as `scrypt$n$r$p$salt$hash` (blocking, ~50 ms)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "$".join(["scrypt", *(str(_SCRYPT[k]) for k in "nrp"), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash from hash_password (blocking)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, _unb64(digest))


def load_secret(configured: str | None, data_dir: Path) -> str:
    """DASHBOARD_SECRET, else the secret kept in the data dir (created 0600 on first use)."""
    if configured:
        return configured
    path = data_dir / "secret.key"
    try:
        kept = path.read_text().strip()
        if len(kept) >= 32:
            return kept
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    partial = path.with_name(f"secret.key.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    os.replace(partial, path)  # never a half-written secret
    return secret


class AuthService:
    """Logs users in and out and checks tokens."""

    def __init__(self, store: Store, data_dir: Path, secret: str | None, token_ttl: int,
                 admin_password: str | None) -> None:
        self.store = store
        self.data_dir = data_dir
        self.token_ttl = token_ttl
        self._configured_secret = secret
        self._admin_password = admin_password
        self._secret = ""
        self._revoked: set[str] = set()
        self._failures: dict[str, list[float]] = {}

    async def start(self) -> None:
        """Load the secret and revocations; create or update `admin` from the configured password."""
        loop = asyncio.get_running_loop()
        self._secret = await loop.run_in_executor(None, load_secret, self._configured_secret, self.data_dir)
        self._revoked = await self.store.revoked()
        if self._admin_password:
            await self.add_user("admin", self._admin_password, "administrator")
        elif await self.store.user("admin") is None:
            log.warning("Authentication is on but no admin password is set: set DASHBOARD_ADMIN_PASSWORD "
                        "(or add users with 'comfy-dashboard users add')")

    async def add_user(self, username: str, password: str, role: str) -> None:
        """Create or replace a user."""
        if role not in ROLES:
            raise ApiError("INVALID_REQUEST", f"Unknown role {role!r}", {"roles": list(ROLES)})
        digest = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        await self.store.save_user(username, role, digest)

    async def login(self, username: str, password: str, address: str) -> dict[str, Any]:
        """`{token, expires_in, user}` for good credentials; UNAUTHORIZED or RATE_LIMIT_EXCEEDED otherwise."""
        keys = (f"user:{username}", f"ip:{address}")
        wait = max(self._lockout(key) for key in keys)
        if wait > 0:
            raise ApiError("RATE_LIMIT_EXCEEDED", "Too many failed logins; try again later",
                           {"retry_after": int(wait) + 1}, headers={"Retry-After": str(int(wait) + 1)})
        user = await self.store.user(username)
        ok = user is not None and await asyncio.get_running_loop().run_in_executor(
            None, verify_password, password, user["password_hash"])
        if not ok:
            now = time.time()
            for key in keys:
                self._failures.setdefault(key, []).append(now)
            log.warning("Failed login for user %r from %s", username[:64], address)
            raise ApiError("UNAUTHORIZED", "Wrong username or password")
        for key in keys:
            self._failures.pop(key, None)
        return {"token": self.issue(user["username"], user["role"]), "expires_in": self.token_ttl,
                "user": {"username": user["username"], "role": user["role"]}}

    def issue(self, username: str, role: str) -> str:
        now = int(time.time())
        claims = {"sub": username, "role": role, "iat": now, "exp": now + self.token_ttl,
                  "jti": secrets.token_hex(12)}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        """The user a token belongs to: `{username, role, jti, exp}`; UNAUTHORIZED if expired, tampered or revoked."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], options={"require": ["exp", "sub", "jti"]})
        except jwt.ExpiredSignatureError:
            raise ApiError("UNAUTHORIZED", "Token expired; log in again") from None
        except jwt.PyJWTError:
            raise ApiError("UNAUTHORIZED", "Invalid token") from None
        if claims["jti"] in self._revoked or claims.get("role") not in ROLES:
            raise ApiError("UNAUTHORIZED", "Token revoked; log in again")
        return {"username": claims["sub"], "role": claims["role"], "jti": claims["jti"], "exp": claims["exp"]}

    async def logout(self, user: dict[str, Any]) -> None:
        """Revoke the token the user presented."""
        self._revoked.add(user["jti"])
        await self.store.revoke(user["jti"], user["exp"])

    def _lockout(self, key: str) -> float:
        now = time.time()
        recent = [t for t in self._failures.get(key, []) if now - t < FAILURE_WINDOW]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        if len(recent) < FAILURES_BEFORE_LOCKOUT:
            return 0.0
        lock = min(MAX_LOCKOUT, 2 ** (len(recent) - FAILURES_BEFORE_LOCKOUT + 1))
        return max(0.0, recent[-1] + lock - now)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)
