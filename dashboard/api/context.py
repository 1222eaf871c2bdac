"""What a handler can reach from its request: the services, the operation list and the user."""

from __future__ import annotations

from aiohttp import web

from ..security.guard import USER  # `request[USER]`: set by the auth guard, which defines it (no import cycle)
from ..security.ratelimit import RateLimiter
from ..services.container import Services

__all__ = ["HUB", "OPERATIONS", "RATE_LIMITER", "SERVICES", "USER", "services"]

SERVICES = web.AppKey("services", Services)
OPERATIONS = web.AppKey("operations", list)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
HUB = web.AppKey("hub", object)


def services(request: web.Request) -> Services:
    """The services behind this request's app."""
    return request.config_dict[SERVICES]
