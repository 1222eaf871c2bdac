"""CORS for the standalone and separate-port servers: CORS_ORIGINS (a list, or `*`).

DASHBOARD_DEV (development only) allows every origin, as `*` does. Unset, no cross-origin access
is granted (the dashboard's own page is same-origin). Inside ComfyUI, ComfyUI's own middlewares
run first: without `--enable-cors-header` ComfyUI answers preflights itself and refuses
cross-origin requests to loopback; with it, ComfyUI's headers apply.
"""

from __future__ import annotations

from aiohttp import web

from ...errors import Forbidden
from ..errors import error_response

ALLOWED_HEADERS = "Authorization, Content-Type, X-API-Version"
EXPOSED_HEADERS = "X-API-Version, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"


def make_cors(origins: tuple[str, ...]):
    """The middleware for these allowed origins."""
    wildcard = "*" in origins

    @web.middleware
    async def cors(request: web.Request, handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not origins or origin is None:
            return await handler(request)
        allowed = wildcard or origin in origins
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        if preflight:
            if not allowed:
                return error_response(Forbidden("Origin not allowed", {"origin": origin[:200]}))
            response = web.Response(status=204)
            response.headers.update({
                "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": "600",
            })
        else:
            response = await handler(request)
        if allowed and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = "*" if wildcard else origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            if not wildcard:
                response.headers["Access-Control-Allow-Credentials"] = "true"
                response.headers["Vary"] = "Origin"
        return response

    return cors
