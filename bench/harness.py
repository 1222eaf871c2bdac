"""Benchmark helpers: a server on its own loop in a thread, loop-lag probing, load, percentiles."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, nearest-rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class LagProbe:
    """Measures how late a 10 ms timer fires on a loop: the event-loop lag."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def reset(self) -> None:
        self.lags.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, loop.time() - expected) * 1000)

    def summary(self) -> str:
        return f"loop lag p50 {percentile(self.lags, 50):.2f} ms, p99 {percentile(self.lags, 99):.2f} ms"


class ThreadedServer:
    """Serves an aiohttp app (built inside the server's own loop) on 127.0.0.1 from a thread."""

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self._make_app = make_app
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.probe = LagProbe()
        self.url = ""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        self._ready.wait(60)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.probe.start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()


async def load(url: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    """`clients` concurrent loops of GET url for `seconds`; returns (requests/s, latencies in ms)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append((time.perf_counter() - start) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def describe(name: str, rps: float, latencies: list[float]) -> str:
    return (f"{name:<28} {rps:8.0f} req/s   p50 {percentile(latencies, 50):6.2f} ms   "
            f"p99 {percentile(latencies, 99):6.2f} ms   (n={len(latencies)}, mean {statistics.fmean(latencies):.2f})")


def plain_walk(models: Path) -> int:
    """The baseline a listing or a re-scan is held against: `os.walk` + `os.stat` of every file; the count."""
    count = 0
    for directory, _dirs, names in os.walk(models):
        for name in names:
            os.stat(os.path.join(directory, name))
            count += 1
    return count
