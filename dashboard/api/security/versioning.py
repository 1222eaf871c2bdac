"""X-API-Version: stamped on every response; a request for another major version is refused."""

from __future__ import annotations

from aiohttp import web

from ... import __version__
from ...errors import UnsupportedApiVersion
from ..errors import error_response

API_VERSION = "1.0.0"
HEADER = "X-API-Version"


@web.middleware
async def version_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Refuse unsupported versions with 400 UNSUPPORTED_API_VERSION; stamp the header."""
    asked = request.headers.get(HEADER)
    if asked is not None and asked.strip().split(".")[0].lstrip("v") != API_VERSION.split(".")[0]:
        response = error_response(UnsupportedApiVersion(f"API version {asked.strip()[:40]!r} is not supported",
            {"supported": [API_VERSION], "server_version": __version__}))
    else:
        response = await handler(request)
    if not response.prepared:
        response.headers[HEADER] = API_VERSION
    return response
