"""Who may call what: authentication (bearer token or session cookie), roles, and origin checks.

With ENABLE_AUTH on, every route needs a valid token except those declared `public` (`/health`,
`/api/auth/login`, and `/ws`, which authenticates inside the socket). Each request is checked
against the user's current role and the token's revocation, not against what the token says.
A viewer may read; anything that changes state needs an administrator. A request authenticated by
cookie that changes state must be same-origin JSON. Always, auth on or off: a state-changing
request or a WebSocket handshake sent by a browser page of another origin (not in CORS_ORIGINS)
is refused, so a web page the user happens to visit cannot drive a dashboard listening on localhost.
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from ...errors import Forbidden, Unauthorized
from ...services.auth import AuthService
from . import request_key

COOKIE = "dashboard_session"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: The authenticated user of a request, `{username, role, jti, exp}` (absent when auth is off).
USER = request_key("user", dict)


def request_token(request: web.Request) -> tuple[str | None, str | None]:
    """The token a request carries and how: ("bearer" | "cookie" | None)."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "bearer"
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, None


def same_origin(request: web.Request, origin: str) -> bool:
    """Whether a browser's Origin is this server's own host and port. The scheme is not compared:
    behind an HTTPS proxy the request arrives as plain http, so a missing port means the origin's."""
    try:
        theirs = URL(origin)
        ours = URL(f"{theirs.scheme}://{request.host}")
    except ValueError:
        return False
    return bool(theirs.host) and (theirs.host, theirs.port) == (ours.host, ours.port)


def origin_allowed(request: web.Request, cors_origins: tuple[str, ...]) -> bool:
    """Whether the request's Origin (if any) may change state here."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not sent by a browser page: scripts, curl, same-origin navigation
    return same_origin(request, origin) or "*" in cors_origins or origin in cors_origins


def make_guard(auth: AuthService | None, cors_origins: tuple[str, ...]):
    """The middleware; `auth` is None when authentication is off."""

    @web.middleware
    async def guard(request: web.Request, handler) -> web.StreamResponse:
        changes_state = request.method not in SAFE_METHODS
        upgrading = request.headers.get("Upgrade", "").lower() == "websocket"
        if (changes_state or upgrading) and not origin_allowed(request, cors_origins):
            raise Forbidden("Requests from another site's page are not allowed",
                            {"origin": request.headers.get("Origin", "")[:200]})
        if auth is None:
            return await handler(request)
        route_handler = request.match_info.handler
        public = getattr(route_handler, "public", False)
        token, via = request_token(request)
        user = None
        if token is not None:
            try:
                user = await auth.authenticate(token)
            except Unauthorized:
                if not public:
                    raise
        if user is not None:
            request[USER] = user
        if public:
            return await handler(request)
        if user is None:
            raise Unauthorized("Authentication required: log in at /api/auth/login",
                               headers={"WWW-Authenticate": "Bearer"})
        if changes_state and not getattr(route_handler, "any_role", False) and user["role"] != "administrator":
            raise Forbidden("This needs an administrator", {"role": user["role"]})
        origin = request.headers.get("Origin")
        if changes_state and via == "cookie" and (
                origin is None or not same_origin(request, origin) or request.content_type != "application/json"):
            raise Forbidden("Cookie sessions may change state only from the same origin, with "
                            "Content-Type: application/json")
        return await handler(request)

    return guard
