"""What a handler can reach from its request: the services and the operation list."""

from __future__ import annotations

from aiohttp import web

from ..security.ratelimit import RateLimiter
from ..services.container import Services

SERVICES = web.AppKey("services", Services)
OPERATIONS = web.AppKey("operations", list)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
HUB = web.AppKey("hub", object)


def services(request: web.Request) -> Services:
    """The services behind this request's app."""
    return request.config_dict[SERVICES]
