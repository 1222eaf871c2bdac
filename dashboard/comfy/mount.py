"""Hosting inside ComfyUI: mount the dashboard on PromptServer's app, and optionally on a port.

The dashboard is a sub-app at `/dashboard`, so it never shadows a ComfyUI route (ComfyUI owns
`/api/models`, `/ws` and more) and its middlewares touch no ComfyUI request. With DASHBOARD_PORT
set, the same services are also served with the spec's exact layout on that port. Nothing here
may take ComfyUI down: every failure is logged once and ComfyUI carries on.

A dashboard that cannot start (bad settings, an unusable data folder, a missing package) still holds
/dashboard: every request there answers 503 DASHBOARD_UNAVAILABLE with the reason, so the page, the
sidebar and scripts can tell a user why, instead of half of the API failing. This module imports
only aiohttp and the standard library up front, so that answer works even when a dependency is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ..api.errors import error_response
from ..config import ConfigError, Settings
from ..errors import DashboardUnavailable

if TYPE_CHECKING:
    from ..services.container import Services

log = logging.getLogger("dashboard")

PREFIX = "/dashboard"


def comfyui_settings(folder_paths) -> Settings:
    """Settings inside ComfyUI: ComfyUI's models folder and user folder unless the environment says otherwise."""
    base = Path(folder_paths.base_path)
    return Settings.from_env(default_port=None, defaults={
        "workspace": str(base),
        "models_dir": folder_paths.models_dir,
        "data_dir": str(Path(folder_paths.get_user_directory()) / "dashboard"),
    })


def mount(prompt_server, folder_paths) -> Services | None:
    """Mount the dashboard on `prompt_server.app` at /dashboard; returns its services (None if it failed)."""
    failure = Failure()
    try:
        from ..app import build_app
        from ..services.container import Services
        from .inprocess import InProcessBackend

        settings = comfyui_settings(folder_paths)
        services = Services(settings, InProcessBackend(prompt_server))
        sub = build_app(services)
    except Exception as exc:
        failure.set(exc)
        services, sub = None, web.Application()
    else:
        _start_with_comfyui(sub, services, failure)
    sub.middlewares.insert(0, failure.middleware)  # outermost: a failed dashboard runs none of its code
    prompt_server.app.router.add_get(PREFIX, _to_page)  # "/dashboard" is no ComfyUI route: the page's door
    prompt_server.app.add_subapp(PREFIX, sub)
    if services is not None:
        log.info("ComfyUI Dashboard mounted at %s/", PREFIX)
    return services


class Failure:
    """Why the dashboard could not start (None while it works); once set, /dashboard answers 503."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, exc: Exception) -> None:
        """Record the failure and log it: one line, the traceback only at debug level."""
        if isinstance(exc, ConfigError):
            self.reason = str(exc)
        elif isinstance(exc, ImportError) and exc.name:
            self.reason = (f"the Python package {exc.name!r} is missing or too old: install this custom node's "
                           "requirements.txt into ComfyUI's Python")
        else:
            self.reason = f"{type(exc).__name__}: {exc}"
        log.error("ComfyUI Dashboard failed to start: %s. ComfyUI keeps running without it; /dashboard answers "
                  "503 until this is fixed and ComfyUI restarted.", self.reason)
        log.debug("Dashboard start failure", exc_info=exc)

    def error(self) -> DashboardUnavailable:
        return DashboardUnavailable(f"ComfyUI Dashboard failed to start: {self.reason}",
                                    {"reason": self.reason})

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if self.reason is None:
            return await handler(request)
        return error_response(self.error())


def _start_with_comfyui(sub: web.Application, services: Services, failure: Failure) -> None:
    """Start and stop the services with ComfyUI's server; a start that fails sets `failure`."""
    settings = services.settings
    runner: list[web.AppRunner] = []

    async def start(_app: web.Application) -> None:
        try:
            await services.start()
            if settings.port is not None:
                runner.extend(await _serve_port(services, settings))
        except Exception as exc:
            failure.set(exc)
            await stop(_app)

    async def stop(_app: web.Application) -> None:
        try:
            for r in runner:
                await r.cleanup()
            runner.clear()
            await services.stop()
        except Exception:
            log.exception("ComfyUI Dashboard did not stop cleanly")

    sub.on_startup.append(start)
    sub.on_cleanup.append(stop)


async def _to_page(request: web.Request) -> web.Response:
    """/dashboard -> /dashboard/ (relative, so it works when ComfyUI sits under a sub-path)."""
    raise web.HTTPMovedPermanently(location="dashboard/")


async def _serve_port(services: Services, settings: Settings) -> list[web.AppRunner]:
    from ..app import build_app

    runner = web.AppRunner(build_app(services), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        log.error("ComfyUI Dashboard could not listen on %s:%s (%s); it stays available at %s/",
                  settings.host, settings.port, exc, PREFIX)
        await runner.cleanup()
        return []
    log.info("ComfyUI Dashboard also serving on http://%s:%s/", settings.host, settings.port)
    return [runner]


def mount_in_comfyui() -> Services | None:
    """Entry point for the custom node's __init__.py: mount, or log why not. Never raises."""
    try:
        import folder_paths
        import server
    except ImportError:
        log.info("ComfyUI Dashboard: not running inside ComfyUI (no 'server' module); nothing mounted")
        return None
    try:
        return mount(server.PromptServer.instance, folder_paths)
    except Exception as exc:
        log.error("ComfyUI Dashboard failed to set up and is disabled; ComfyUI keeps running: %s", exc)
        log.debug("Dashboard setup failure", exc_info=True)
        return None
