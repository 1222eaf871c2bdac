"""What a handler can reach from its request: the services and the operation list."""

from __future__ import annotations

from aiohttp import web

from ..services.container import Services

SERVICES = web.AppKey("services", Services)
OPERATIONS = web.AppKey("operations", list)


def services(request: web.Request) -> Services:
    """The services behind this request's app."""
    return request.config_dict[SERVICES]
