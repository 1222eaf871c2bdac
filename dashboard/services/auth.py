"""Users, passwords and tokens: who may use the dashboard when ENABLE_AUTH is on.

Passwords are stored as salted scrypt hashes (hashed off the event loop). Tokens are JWTs (HS256,
pyjwt) signed with DASHBOARD_SECRET, or with a secret generated once and kept in the data dir
with 0600 permissions. Logging out revokes a token's id in SQLite, so it stays revoked after a
restart.

A token names its user; every check reads that user's current role from an in-memory copy of the
users and revoked tokens, so a demoted user is a viewer at once, and the tokens of a removed or
replaced user stop working. Every change goes through this service, which writes SQLite and the
copy alike and tells its listeners (the WebSocket hub); what another process commits (the
`comfy-dashboard users add` command) is read again at the next check, which asks SQLite whether
anything changed (`PRAGMA data_version`). Repeated failed logins for a user from one address slow
down that user at that address only. Secrets never appear in logs or error messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

from ..config import ConfigError
from ..errors import InvalidRequest, NotFound, RateLimitExceeded, Unauthorized
from ..store import Store
from ..threads import LOOP_DEFAULT, Threads

log = logging.getLogger("dashboard.auth")

ROLES = ("administrator", "viewer")
NOBODY_CAN_LOG_IN = ("ENABLE_AUTH is on but there is no user to log in as: set DASHBOARD_ADMIN_PASSWORD, "
                     "or add one with 'comfy-dashboard users add NAME --role administrator'")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
FAILURES_BEFORE_LOCKOUT = 5
FAILURE_WINDOW = 15 * 60
MAX_LOCKOUT = 15 * 60
#: (user, address) pairs with recent failures kept before the stale ones are dropped.
MAX_TRACKED = 10_000


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
    """Logs users in and out, keeps the users, and checks tokens against them."""

    def __init__(self, store: Store, data_dir: Path, secret: str | None, token_ttl: int,
                 admin_password: str | None, threads: Threads = LOOP_DEFAULT) -> None:
        self.store = store
        self.threads = threads
        self.data_dir = data_dir
        self.token_ttl = token_ttl
        self._configured_secret = secret
        self._admin_password = admin_password
        self._secret = ""
        self._users: dict[str, dict[str, Any]] = {}
        self._revoked: set[str] = set()
        self._seen_version: int | None = None
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._listeners: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Load the secret, users and revocations; create or update `admin` from the configured password."""
        self._secret = await self.threads.run(load_secret, self._configured_secret, self.data_dir)
        await self._load()
        if self._admin_password:
            await self.add_user("admin", self._admin_password, "administrator")  # unchanged: sessions stay
        elif not self._users:
            raise ConfigError(NOBODY_CAN_LOG_IN)

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` after every change to users or revoked tokens; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def add_user(self, username: str, password: str, role: str) -> None:
        """Create a user, or change one. With the password it has, only the role changes, and its tokens
        keep working with the new role; with another password the user is replaced, and its tokens stop
        working."""
        _check_role(role)
        await self.refresh()
        existing = self._users.get(username)
        if existing is not None and await self.threads.run(verify_password, password, existing["password_hash"]):
            if existing["role"] != role:
                await self.set_role(username, role)
            return
        digest = await self.threads.run(hash_password, password)
        created_at = await self.store.save_user(username, role, digest)
        self._users = {**self._users, username: {"username": username, "role": role, "password_hash": digest,
                                                 "created_at": created_at}}
        self._changed()

    async def set_role(self, username: str, role: str) -> None:
        """Change a user's role; their tokens keep working, with the new role."""
        _check_role(role)
        if not await self.store.set_role(username, role):
            raise NotFound("No such user", {"username": username[:100]})
        if username in self._users:
            self._users = {**self._users, username: {**self._users[username], "role": role}}
        self._changed()

    async def remove_user(self, username: str) -> None:
        """Remove a user; their tokens stop working."""
        if not await self.store.delete_user(username):
            raise NotFound("No such user", {"username": username[:100]})
        self._users = {name: user for name, user in self._users.items() if name != username}
        self._changed()

    async def refresh(self) -> None:
        """Read users and revocations again if another process committed to the database since the last look."""
        if await self.store.data_version() != self._seen_version:
            await self._load()

    async def login(self, username: str, password: str, address: str) -> dict[str, Any]:
        """`{token, expires_in, user}` for good credentials; UNAUTHORIZED or RATE_LIMIT_EXCEEDED otherwise.

        Only failures for this user from this address slow it down, so nobody elsewhere is locked out.
        """
        key = (username, address)
        wait = self._lockout(key)
        if wait > 0:
            raise RateLimitExceeded("Too many failed logins; try again later",
                                    {"retry_after": int(wait) + 1}, headers={"Retry-After": str(int(wait) + 1)})
        await self.refresh()
        user = self._users.get(username)
        ok = user is not None and await self.threads.run(verify_password, password, user["password_hash"])
        if not ok:
            self._failed(key)
            log.warning("Failed login for user %r from %s", username[:64], address)
            raise Unauthorized("Wrong username or password")
        self._failures.pop(key, None)
        return {"token": self.issue(user), "expires_in": self.token_ttl,
                "user": {"username": user["username"], "role": user["role"]}}

    def issue(self, user: dict[str, Any]) -> str:
        """A token for this user record; `ver` ties it to the record, so replacing the user voids it."""
        now = int(time.time())
        claims = {"sub": user["username"], "role": user["role"], "ver": user["created_at"], "iat": now,
                  "exp": now + self.token_ttl, "jti": secrets.token_hex(12)}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        """The user a token belongs to, with their current role: `{username, role, jti, exp}`.

        UNAUTHORIZED if the token is expired, tampered or revoked, or its user was removed or replaced.
        Reads only memory: call `refresh()` first to notice other processes' changes (see `authenticate`).
        """
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], options={"require": ["exp", "sub", "jti"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Token expired; log in again") from None
        except jwt.PyJWTError:
            raise Unauthorized("Invalid token") from None
        if claims["jti"] in self._revoked:
            raise Unauthorized("Token revoked; log in again")
        user = self._users.get(claims["sub"])
        if user is None or claims.get("ver") != user["created_at"]:
            raise Unauthorized("This account was removed or replaced; log in again")
        return {"username": user["username"], "role": user["role"], "jti": claims["jti"], "exp": claims["exp"]}

    async def authenticate(self, token: str) -> dict[str, Any]:
        """`verify`, after noticing what other processes changed: the check for every request."""
        await self.refresh()
        return self.verify(token)

    async def logout(self, user: dict[str, Any]) -> None:
        """Revoke the token the user presented."""
        self._revoked.add(user["jti"])
        await self.store.revoke(user["jti"], user["exp"])
        self._changed()

    async def _load(self) -> None:
        # Each copy is replaced right after its own read: the store runs calls in order, so a change made
        # here meanwhile is never overwritten by an older read. Revocations only ever grow.
        version = await self.store.data_version()
        users = {user["username"]: user for user in await self.store.users()}
        changed = users != self._users
        self._users = users
        revoked = self._revoked | await self.store.revoked()
        changed = changed or revoked != self._revoked
        self._revoked, self._seen_version = revoked, version
        if changed:
            self._changed()

    def _changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("An auth change listener failed")

    def _failed(self, key: tuple[str, str]) -> None:
        now = time.time()
        if len(self._failures) >= MAX_TRACKED:
            self._failures = {k: times for k, times in self._failures.items() if now - times[-1] < FAILURE_WINDOW}
        self._failures.setdefault(key, []).append(now)

    def _lockout(self, key: tuple[str, str]) -> float:
        """Seconds this (user, address) must still wait: 2 s after the 5th failure in 15 minutes, doubling
        with each further failure, at most 15 minutes."""
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


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidRequest(f"Unknown role {role!r}", {"roles": list(ROLES)})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)
