"""Rate limits: N requests a minute per address, more per token; headers on every response.

The dashboard page and its static files (routes declared `rate_limited=False`) are not counted:
loading the page must never use up the API's budget.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import time

from aiohttp import web

from ..errors import ApiError, error_response
from ..services.auth import AuthService
from .guard import request_token

WINDOW = 60.0


class RateLimiter:
    """Fixed one-minute windows per key."""

    def __init__(self, anonymous: int, authenticated: int, trusted_proxies: tuple[str, ...]) -> None:
        self.anonymous = anonymous
        self.authenticated = authenticated
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, limit: int, now: float | None = None) -> tuple[bool, int, float]:
        """Count a request: (allowed, remaining, window reset time)."""
        now = time.time() if now is None else now
        start, count = self._windows.get(key, (now, 0))
        if now - start >= WINDOW:
            start, count = now, 0
        count += 1
        self._windows[key] = (start, count)
        if len(self._windows) > 50_000:
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < WINDOW}
        return count <= limit, max(0, limit - count), start + WINDOW

    def client_address(self, request: web.Request) -> str:
        """The peer's address; X-Forwarded-For is believed only from trusted proxies."""
        peer = request.remote or "unknown"
        forwarded = request.headers.get("X-Forwarded-For")
        if not forwarded or not self._trusted(peer):
            return peer
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            if not self._trusted(hop):
                return hop
        return peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.proxies)


def make_rate_limit(limiter: RateLimiter, auth: AuthService | None):
    """The middleware; a limit of 0 turns that limit off."""

    @web.middleware
    async def rate_limit(request: web.Request, handler) -> web.StreamResponse:
        if not getattr(request.match_info.handler, "rate_limited", True):  # the page's own static files
            return await handler(request)
        key, limit = None, limiter.anonymous
        token, _via = request_token(request)
        if auth is not None and token is not None:
            with contextlib.suppress(ApiError):  # an invalid token counts against the address
                key, limit = "token:" + auth.verify(token)["jti"], limiter.authenticated
        if key is None:
            key = "ip:" + limiter.client_address(request)
        if limit <= 0:
            return await handler(request)
        allowed, remaining, reset = limiter.hit(key, limit)
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": str(math.ceil(reset))}
        if not allowed:
            retry = max(1, math.ceil(reset - time.time()))
            response = error_response(ApiError("RATE_LIMIT_EXCEEDED", f"More than {limit} requests a minute",
                                               {"limit": limit, "retry_after": retry}))
            response.headers["Retry-After"] = str(retry)
        else:
            response = await handler(request)
        if not response.prepared:
            response.headers.update(headers)
        return response

    return rate_limit
