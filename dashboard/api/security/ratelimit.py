"""Rate limits: N requests a minute per address, more per token; the headers on every response.

The middleware counts each request and answers 429 RATE_LIMIT_EXCEEDED (with Retry-After) past
the limit. Routes declared `rate_limited=False` are not counted: the dashboard page and its files
(loading the page never uses the API's budget) and `/health` (a load balancer's probe never fails
under load). A WebSocket counts once, at its handshake, never per message. Every response carries
X-RateLimit-Limit, -Remaining and -Reset, also one not counted and one answered before the
middleware runs (a refused API version, a CORS preflight): `rate_limit_headers` writes them as the
response is prepared, with the budget as it stands.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ...errors import RateLimitExceeded, Unauthorized
from ...services.auth import AuthService
from ..errors import error_response
from . import request_key
from .guard import request_token

#: Seconds of one counting window.
WINDOW = 60.0
#: The X-RateLimit-* headers of a counted request, for `rate_limit_headers`.
RATE_HEADERS = request_key("rate_limit_headers", dict)


class RateLimiter:
    """Fixed windows of WINDOW seconds per key."""

    def __init__(self, anonymous: int, authenticated: int, trusted_proxies: tuple[str, ...]) -> None:
        self.anonymous = anonymous
        self.authenticated = authenticated
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, limit: int, now: float | None = None) -> tuple[bool, int, float]:
        """Count a request: (allowed, remaining, window reset time)."""
        now = time.time() if now is None else now
        start, count = self._window(key, now)
        count += 1
        self._windows[key] = (start, count)
        if len(self._windows) > 50_000:
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < WINDOW}
        return count <= limit, max(0, limit - count), start + WINDOW

    def peek(self, key: str, limit: int, now: float | None = None) -> tuple[int, float]:
        """(remaining, window reset time) without counting anything."""
        now = time.time() if now is None else now
        start, count = self._window(key, now)
        return max(0, limit - count), start + WINDOW

    def bucket(self, request: web.Request, auth: AuthService | None) -> tuple[str, int]:
        """The key a request counts against and its limit: its token's if valid, else its address's."""
        token, _via = request_token(request)
        if auth is not None and token is not None:
            with contextlib.suppress(Unauthorized):  # an invalid token counts against the address
                return "token:" + auth.verify(token)["jti"], self.authenticated
        return "ip:" + self.client_address(request), self.anonymous

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

    def _window(self, key: str, now: float) -> tuple[float, int]:
        start, count = self._windows.get(key, (now, 0))
        return (now, 0) if now - start >= WINDOW else (start, count)

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
        if not getattr(request.match_info.handler, "rate_limited", True):
            return await handler(request)
        key, limit = limiter.bucket(request, auth)
        if limit <= 0:
            return await handler(request)
        allowed, remaining, reset = limiter.hit(key, limit)
        request[RATE_HEADERS] = _headers(limit, remaining, reset)
        if allowed:
            return await handler(request)
        retry = max(1, math.ceil(reset - time.time()))
        return error_response(RateLimitExceeded(f"More than {limit} requests a minute",
                                                {"limit": limit, "retry_after": retry},
                                                headers={"Retry-After": str(retry)}))

    return rate_limit


def rate_limit_headers(limiter: RateLimiter, auth: AuthService | None
                       ) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """The app's `on_response_prepare` hook: the X-RateLimit-* headers on every response it sends."""

    async def stamp(request: web.Request, response: web.StreamResponse) -> None:
        headers = request.get(RATE_HEADERS)
        if headers is None:  # not counted: the budget as it stands
            key, limit = limiter.bucket(request, auth)
            if limit <= 0:
                return
            headers = _headers(limit, *limiter.peek(key, limit))
        response.headers.update(headers)

    return stamp


def _headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(reset))}
