"""GET /api/models over 20,000 files in 20 folders: cold and warm latency vs a plain os.walk + stat.

Cold = the first listing after the index forgot everything (`ModelIndex.reset()` on a running
server, so the scan, the assembly and the page are all in it), repeated; also the first listing
after a fresh server start, which includes loading the preset catalogue. Warm = the same listing
repeated. The plain walk is `os.walk` + `os.stat` of every file of the same tree, in the same run
(all with a warm OS cache). The server's loop lag is probed during the cold listings.

Goals: warm p50 < 20 ms; cold <= 1.5x the plain walk; loop lag p99 < 20 ms during cold scans.

    python bench/models.py [--files 20000] [--folders 20] [--cold 10] [--warm 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ThreadedServer, percentile, plain_walk
from dashboard.api.context import SERVICES
from dashboard.app import create_app
from dashboard.comfy.folders import FOLDER_TYPES, ensure_model_folders
from dashboard.config import Settings


def make_tree(models: Path, files: int, folders: int) -> None:
    """`files` small model files spread over `folders` folders (one per folder type, then subfolders)."""
    types = list(FOLDER_TYPES)
    for f in range(folders):
        folder = models / types[f % len(types)] / (f"set{f}" if f >= len(types) else "")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(f, files, folders):
            with open(folder / f"model_{i:06d}.safetensors", "wb") as out:
                out.write(b"x" * (i % 97))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


async def get(session: aiohttp.ClientSession, url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    async with session.get(url) as response:
        body = await response.json()
        assert response.status == 200, body
    return (time.perf_counter() - start) * 1000, body


def stats(values: list[float]) -> str:
    return (f"p50 {percentile(values, 50):7.2f} ms   p99 {percentile(values, 99):7.2f} ms   "
            f"mean {statistics.fmean(values):7.2f} ms   (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=20)
    parser.add_argument("--cold", type=int, default=10, help="cold listings (index reset each time)")
    parser.add_argument("--starts", type=int, default=3, help="fresh server starts")
    parser.add_argument("--warm", type=int, default=300, help="warm listings")
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    settings = Settings.from_env({}, workspace=str(workspace), official_templates="false", rate_limit="0")
    ensure_model_folders(settings.models_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    make_tree(settings.models_dir, args.files, args.folders)
    made = time.perf_counter() - started

    assert plain_walk(settings.models_dir) == args.files  # warms the OS cache, checks the tree
    walks = [timed(plain_walk, settings.models_dir) for _ in range(max(5, args.cold))]

    first_listings: list[float] = []
    for _ in range(args.starts):
        with ThreadedServer(lambda: create_app(settings)) as server:
            first_listings.append(asyncio.run(_first(server.url + "/api/models")))

    holder: dict = {}

    def make_app():
        app = create_app(settings)
        holder["services"] = app[SERVICES]
        return app

    with ThreadedServer(make_app) as server:
        cold, warm, cold_lags, warm_lags, body = asyncio.run(_measure(server, holder["services"], args))

    assert body["total"] == args.files, body["total"]
    walk = percentile(walks, 50)
    print(f"{args.files} files in {args.folders} folders (made in {made:.1f} s); listing page size "
          f"{len(body['models'])} (the default limit); warm OS cache; server and client in one process")
    print(f"plain os.walk + stat          {stats(walks)}")
    print(f"cold GET /api/models          {stats(cold)}   | loop lag p50 {percentile(cold_lags, 50):.2f} ms, "
          f"p99 {percentile(cold_lags, 99):.2f} ms, max {max(cold_lags):.2f} ms (n={len(cold_lags)})")
    print(f"first listing after start     {stats(first_listings)}   (includes loading the preset catalogue)")
    print(f"warm GET /api/models          {stats(warm)}   | loop lag p99 {percentile(warm_lags, 99):.2f} ms")
    print(f"ratio cold p50 / plain walk p50: {percentile(cold, 50) / walk:.2f}x (goal <= 1.5x)")
    print(f"ratio warm p50 / plain walk p50: {percentile(warm, 50) / walk:.3f}x; warm p50 "
          f"{percentile(warm, 50):.2f} ms (goal < 20 ms)")
    print(f"loop lag p99 during cold listings: {percentile(cold_lags, 99):.2f} ms (goal < 20 ms)")


async def _first(url: str) -> float:
    async with aiohttp.ClientSession() as session:
        elapsed, _body = await get(session, url)
    return elapsed


async def _measure(server: ThreadedServer, services, args):
    url = server.url + "/api/models"
    cold: list[float] = []
    cold_lags: list[float] = []
    warm: list[float] = []
    async with aiohttp.ClientSession() as session:
        await get(session, url)
        for _ in range(args.cold):
            asyncio.run_coroutine_threadsafe(_reset(services), server.loop).result()
            server.probe.reset()
            elapsed, body = await get(session, url)
            cold.append(elapsed)
            await asyncio.sleep(0.05)  # let the probe see the loop after the answer too
            cold_lags.extend(server.probe.lags)
        server.probe.reset()
        for _ in range(args.warm):
            elapsed, body = await get(session, url)
            warm.append(elapsed)
        warm_lags = list(server.probe.lags)
    return cold, warm, cold_lags, warm_lags, body


async def _reset(services) -> None:
    services.index.reset()


if __name__ == "__main__":
    main()
