"""Composition root: the aiohttp application that serves a dashboard's services, and their lifetime.

`build_app(services)` is the API with the spec's layout (`/health`, `/api/...`, `/ws`);
`lifetime(services)` is the one start and stop of a dashboard, an aiohttp cleanup_ctx;
`create_app(settings, backend)` is both at once. Where an app is served (inside ComfyUI, on a port
of its own, standalone) is `hosting.py`'s business.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .api.context import HUB, OPERATIONS, RATE_LIMITER, SERVICES
from .api.errors import error_middleware
from .api.openapi import all_operations
from .api.security.cors import make_cors
from .api.security.guard import make_guard
from .api.security.ratelimit import RateLimiter, make_rate_limit, rate_limit_headers
from .api.security.versioning import version_middleware
from .api.tables import TABLES
from .comfy.backend import ComfyBackend, UnavailableBackend
from .comfy.remote import RemoteBackend
from .config import Settings
from .services.container import Services
from .ws import Hub

log = logging.getLogger("dashboard")

#: Largest accepted request body (workflows can be big, nothing else is).
MAX_REQUEST_BYTES = 32 * 1024**2


def default_backend(settings: Settings) -> ComfyBackend:
    """The remote backend when COMFYUI_URL is set, else the unavailable one."""
    return RemoteBackend(settings.comfyui_url) if settings.comfyui_url else UnavailableBackend()


def create_app(settings: Settings, backend: ComfyBackend | None = None) -> web.Application:
    """The whole API (`/health`, `/api/...`, `/ws`); it starts and stops its own services."""
    services = Services(settings, backend or default_backend(settings))
    app = build_app(services)
    app.cleanup_ctx.append(lifetime(services))
    return app


def lifetime(services: Services) -> Callable[[web.Application], AsyncIterator[None]]:
    """The services' start and stop as an aiohttp cleanup_ctx: they start with the app (a start that
    fails raises, having stopped what it started) and stop once it has stopped serving."""

    async def services_running(_app: web.Application) -> AsyncIterator[None]:
        warn_if_dev(services.settings)
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    return services_running


def allowed_origins(settings: Settings) -> tuple[str, ...]:
    """The origins whose pages may call the API: all of them with DASHBOARD_DEV, else CORS_ORIGINS."""
    return ("*",) if settings.dev else settings.cors_origins


def warn_if_dev(settings: Settings) -> None:
    """Log, once at start, that the development switch is on."""
    if settings.dev:
        log.warning("Development mode (DASHBOARD_DEV / --dev) is on: pages from any site may call this dashboard. "
                    "Do not use it on a shared network.")


def build_app(services: Services) -> web.Application:
    """An application serving `services`, which the caller starts and stops (see `lifetime`).

    Middlewares, outermost first: version header, CORS, rate limit, error shape, origin and auth guard.
    The WebSocket hub closes its connections when the app shuts down, before the services stop.
    """
    settings = services.settings
    origins = allowed_origins(settings)
    limiter = RateLimiter(settings.rate_limit, settings.rate_limit_authenticated, settings.trusted_proxies)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[
        version_middleware,
        make_cors(origins),
        make_rate_limit(limiter, services.auth),
        error_middleware,
        make_guard(services.auth, origins),
    ])
    app[SERVICES] = services
    app[OPERATIONS] = all_operations(TABLES)
    app[RATE_LIMITER] = limiter
    app.on_response_prepare.append(rate_limit_headers(limiter, services.auth))
    hub = Hub(services, services.auth.verify if services.auth else None)
    app[HUB] = hub

    async def close_hub(_app: web.Application) -> None:
        hub.close()
        await hub.close_connections()

    app.on_shutdown.append(close_hub)
    for table in TABLES:
        table.register(app)
    return app
