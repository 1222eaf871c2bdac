"""Where the dashboard runs: one app (`app.py`), three ways to host it.

- Inside ComfyUI (`mount_in_comfyui`, called by the custom node's `__init__.py`): a sub-app at
  `/dashboard` on ComfyUI's own server, with the in-process backend. The prefix means the
  dashboard never shadows a ComfyUI route (ComfyUI owns `/api/models`, `/ws` and more), and its
  middlewares touch no ComfyUI request.
- Inside ComfyUI on a port of its own as well (DASHBOARD_PORT): the same services, also served
  with the spec's exact layout on that port, for as long as the sub-app runs.
- Standalone (`serve_standalone`, for `comfy-dashboard`): the spec's layout on --host/--port.

Inside ComfyUI nothing here may take ComfyUI down: every failure is logged once and ComfyUI carries
on. A dashboard that cannot start (bad settings, an unusable data folder, a missing package) still
holds /dashboard: every request there answers 503 DASHBOARD_UNAVAILABLE with the reason, so the
page, the sidebar and scripts can tell a user why, instead of half of the API failing. So this
module imports only aiohttp and the standard library up front (and the dashboard modules that do
the same: settings, errors, where ComfyUI is); the app and its services are imported when
mounting, where a missing dependency becomes that answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .comfy.host import ComfyUI, running_comfyui
from .config import ConfigError, Settings
from .errors import DashboardUnavailable

if TYPE_CHECKING:
    from .services.container import Services

log = logging.getLogger("dashboard")

#: Where the dashboard sits on ComfyUI's server.
PREFIX = "/dashboard"


# ---- inside ComfyUI ----

def mount_in_comfyui() -> Services | None:
    """Entry point for the custom node's `__init__.py`: mount on this process's ComfyUI, or log why not.
    Returns the dashboard's services (None when there are none). Never raises."""
    try:
        comfyui = running_comfyui()
        if comfyui is None:
            log.info("ComfyUI Dashboard: not running inside ComfyUI (no 'server' module); nothing mounted")
            return None
        return mount(comfyui)
    except Exception as exc:
        log.error("ComfyUI Dashboard failed to set up and is disabled; ComfyUI keeps running: %s", exc)
        log.debug("Dashboard setup failure", exc_info=True)
        return None


def mount(comfyui: ComfyUI) -> Services | None:
    """Mount the dashboard on ComfyUI's server at /dashboard, to start and stop with it.

    Returns its services, or None when it could not be built (then /dashboard answers 503).
    """
    failure = StartFailure()
    try:
        from .app import build_app, lifetime
        from .comfy.inprocess import InProcessBackend
        from .services.container import Services

        settings = Settings.from_env(default_port=None, defaults=comfyui.folder_defaults())
        services = Services(settings, InProcessBackend(comfyui.server))
        sub = build_app(services)
    except Exception as exc:
        failure.record(exc)
        services, sub = None, web.Application()
    else:
        sub.cleanup_ctx.append(_in_comfyui(lifetime(services), services, failure))
    sub.middlewares.insert(0, failure.middleware)  # outermost: a failed dashboard runs none of its code
    comfyui.app.router.add_get(PREFIX, _to_page)  # "/dashboard" is no ComfyUI route: the page's door
    comfyui.app.add_subapp(PREFIX, sub)
    if services is not None:
        log.info("ComfyUI Dashboard mounted at %s/", PREFIX)
    return services


class StartFailure:
    """Why the dashboard could not start (None while it works); once recorded, /dashboard answers 503."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def record(self, exc: Exception) -> None:
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
        """The error every dashboard request answers while the dashboard is down."""
        return DashboardUnavailable(f"ComfyUI Dashboard failed to start: {self.reason}", {"reason": self.reason})

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        """The sub-app's outermost middleware: 503 for everything once the dashboard failed."""
        if self.reason is None:
            return await handler(request)
        error = self.error()  # rendered here, not by api/: this answer must not need the rest of the dashboard
        return web.json_response(error.to_dict(), status=error.status, headers=error.headers)


def _in_comfyui(running: Callable[[web.Application], AsyncIterator[None]], services: Services,
                failure: StartFailure) -> Callable[[web.Application], AsyncIterator[None]]:
    """The sub-app's cleanup_ctx: the dashboard's lifetime (`running`), then its own port when
    DASHBOARD_PORT is set. Nothing escapes into ComfyUI: a start that fails is recorded in
    `failure` and what had started is stopped again; a stop that fails is logged."""

    async def dashboard_in_comfyui(app: web.Application) -> AsyncIterator[None]:
        steps = contextlib.AsyncExitStack()
        try:
            await steps.enter_async_context(contextlib.asynccontextmanager(running)(app))
            if services.settings.port is not None:
                await steps.enter_async_context(_own_port(services))
        except Exception as exc:
            failure.record(exc)
            await _unwind(steps)
        yield
        await _unwind(steps)

    return dashboard_in_comfyui


async def _unwind(steps: contextlib.AsyncExitStack) -> None:
    try:
        await steps.aclose()
    except Exception:
        log.exception("ComfyUI Dashboard did not stop cleanly")


async def _to_page(request: web.Request) -> web.Response:
    """/dashboard -> /dashboard/ (relative, so it works when ComfyUI sits under a sub-path)."""
    raise web.HTTPMovedPermanently(location="dashboard/")


# ---- inside ComfyUI, on a port of its own as well ----

@contextlib.asynccontextmanager
async def _own_port(services: Services) -> AsyncIterator[None]:
    """The same services with the spec's layout on DASHBOARD_PORT while this is entered. A port
    that cannot be listened on is logged; the dashboard stays at /dashboard/."""
    from .app import build_app

    settings = services.settings
    runner = web.AppRunner(build_app(services), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        log.error("ComfyUI Dashboard could not listen on %s:%s (%s); it stays available at %s/",
                  settings.host, settings.port, exc, PREFIX)
        await runner.cleanup()
        yield
        return
    log.info("ComfyUI Dashboard also serving on http://%s:%s/", settings.host, settings.port)
    try:
        yield
    finally:
        await runner.cleanup()


# ---- standalone ----

class StartupError(Exception):
    """The standalone dashboard cannot start here; the message says why in one line."""


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound, not yet listening, to `port` on every address `host` resolves to.

    With port 0 every address gets the same free port. Raises StartupError when the address
    cannot be resolved or bound (the port is taken, the address is not this machine's).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}: {exc.strerror}; check --host or DASHBOARD_HOST") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":  # as asyncio does: elsewhere it would let two servers share a port
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise StartupError(_bind_failure(host, port, exc)) from None
    return sockets


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    where = f"{url_host(host)}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is in use; choose another with --port or DASHBOARD_PORT"
    return f"cannot listen on {where}: {exc.strerror or exc}; check --host or DASHBOARD_HOST"


def url_host(host: str) -> str:
    """A host as it goes into a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


async def serve_standalone(settings: Settings, sockets: list[socket.socket], ready: Callable[[str], None]) -> None:
    """Serve the whole API (`create_app`) on `sockets` until SIGINT or SIGTERM; `ready(url)` once it listens.

    Raises StartupError when the services or the sockets cannot be started.
    """
    from .app import create_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=5)
    try:
        try:
            await runner.setup()  # starts the services
            for sock in sockets:
                await web.SockSite(runner, sock).start()
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot start: {exc}") from None
        ready(f"http://{url_host(settings.host)}:{sockets[0].getsockname()[1]}/")
        await stop.wait()
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()
