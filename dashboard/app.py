"""Composition root: build the services and the aiohttp application that serves them."""

from __future__ import annotations

from aiohttp import web

from .api import TABLES
from .api.context import OPERATIONS, SERVICES
from .api.openapi import all_operations
from .comfy.backend import ComfyBackend, UnavailableBackend
from .comfy.remote import RemoteBackend
from .config import Settings
from .errors import error_middleware
from .security.versioning import version_middleware
from .services.container import Services

#: Largest accepted request body (workflows can be big, nothing else is).
MAX_REQUEST_BYTES = 32 * 1024**2


def default_backend(settings: Settings) -> ComfyBackend:
    """The remote backend when COMFYUI_URL is set, else the unavailable one."""
    return RemoteBackend(settings.comfyui_url) if settings.comfyui_url else UnavailableBackend()


def create_app(settings: Settings, backend: ComfyBackend | None = None) -> web.Application:
    """The whole API (`/health`, `/api/...`, `/ws`); it starts and stops its own services."""
    services = Services(settings, backend or default_backend(settings))
    app = build_app(services)

    async def start(_app: web.Application) -> None:
        await services.start()

    async def stop(_app: web.Application) -> None:
        await services.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def build_app(services: Services) -> web.Application:
    """An application serving `services`, which the caller starts and stops."""
    app = web.Application(middlewares=[version_middleware, error_middleware], client_max_size=MAX_REQUEST_BYTES)
    app[SERVICES] = services
    app[OPERATIONS] = all_operations(TABLES)
    for table in TABLES:
        table.register(app)
    return app
