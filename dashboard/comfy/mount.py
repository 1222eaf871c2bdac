"""Hosting inside ComfyUI: mount the dashboard on PromptServer's app, and optionally on a port.

The dashboard is a sub-app at `/dashboard`, so it never shadows a ComfyUI route (ComfyUI owns
`/api/models`, `/ws` and more) and its middlewares touch no ComfyUI request. With DASHBOARD_PORT
set, the same services are also served with the spec's exact layout on that port. Nothing here
may take ComfyUI down: every failure is logged once and ComfyUI carries on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from ..app import build_app
from ..config import Settings
from ..services.container import Services
from .inprocess import InProcessBackend

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


def mount(prompt_server, folder_paths) -> Services:
    """Mount the dashboard on `prompt_server.app` at /dashboard; returns its services."""
    settings = comfyui_settings(folder_paths)
    services = Services(settings, InProcessBackend(prompt_server))
    sub = build_app(services)
    runner: list[web.AppRunner] = []

    async def start(_app: web.Application) -> None:
        try:
            await services.start()
            if settings.port is not None:
                runner.extend(await _serve_port(services, settings))
        except Exception:
            log.exception("ComfyUI Dashboard could not start; ComfyUI continues without it")

    async def stop(_app: web.Application) -> None:
        try:
            for r in runner:
                await r.cleanup()
            await services.stop()
        except Exception:
            log.exception("ComfyUI Dashboard did not stop cleanly")

    sub.on_startup.append(start)
    sub.on_cleanup.append(stop)
    prompt_server.app.router.add_get(PREFIX, _to_page)  # "/dashboard" is no ComfyUI route: the page's door
    prompt_server.app.add_subapp(PREFIX, sub)
    log.info("ComfyUI Dashboard mounted at %s/", PREFIX)
    return services


async def _to_page(request: web.Request) -> web.Response:
    """/dashboard -> /dashboard/ (relative, so it works when ComfyUI sits under a sub-path)."""
    raise web.HTTPMovedPermanently(location="dashboard/")


async def _serve_port(services: Services, settings: Settings) -> list[web.AppRunner]:
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
