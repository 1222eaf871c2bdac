"""A real dashboard server on 127.0.0.1 in a background thread, for tests that are not async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

from dashboard.app import create_app
from dashboard.config import Settings


@contextmanager
def loop_in_thread(name: str) -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a background thread of this name; stopped and closed afterwards."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@contextmanager
def serving_in_thread(build: Callable[[], Awaitable[web.Application]], name: str = "dashboard-live") -> Iterator[str]:
    """Serve the app `build()` makes (on the server's own loop, in a background thread); yields its base URL."""

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(await build(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    with loop_in_thread(name) as loop:
        runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """Serve a dashboard with these settings; yields its base URL."""

    async def build() -> web.Application:
        return create_app(settings)

    with serving_in_thread(build) as url:
        yield url
