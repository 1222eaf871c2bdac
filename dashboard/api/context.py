"""What a handler can reach from its request: the services, the operation list and the user."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..services.container import Services
from .security.guard import USER  # `request[USER]`: set by the auth guard
from .security.ratelimit import RateLimiter

if TYPE_CHECKING:  # the hub's actions are built from the route tables, which import this module
    from ..ws import Hub
    from .routing import Operation

__all__ = ["HUB", "OPERATIONS", "RATE_LIMITER", "SERVICES", "USER", "services"]

SERVICES = web.AppKey("services", Services)
OPERATIONS: web.AppKey[list[Operation]] = web.AppKey("operations")
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
HUB: web.AppKey[Hub] = web.AppKey("hub")


def services(request: web.Request) -> Services:
    """The services behind this request's app."""
    return request.config_dict[SERVICES]
