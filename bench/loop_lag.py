"""GET /api/system/status under 50 concurrent clients vs a trivial aiohttp handler, same run.

Prints requests/s, latency percentiles, the server loop's lag, and the ratio. Goal: status
throughput >= 0.5x the trivial handler, loop lag p99 < 10 ms.

    python bench/loop_lag.py [--clients 50] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ThreadedServer, describe, load
from dashboard.app import create_app
from dashboard.config import Settings


def trivial_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/", hello)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    settings = Settings.from_env({}, workspace=str(workspace), status_interval="0.5",
                                 rate_limit="10000000")  # the limiter runs, never refuses

    with ThreadedServer(trivial_app) as server:
        asyncio.run(load(server.url + "/", 5, 0.5))  # warm up
        server.probe.reset()
        base_rps, base_lat = asyncio.run(load(server.url + "/", args.clients, args.seconds))
        base_lag = server.probe.summary()
    with ThreadedServer(lambda: create_app(settings)) as server:
        asyncio.run(load(server.url + "/api/system/status", 5, 0.5))
        server.probe.reset()
        rps, lat = asyncio.run(load(server.url + "/api/system/status", args.clients, args.seconds))
        lag = server.probe.summary()

    print(f"{args.clients} concurrent clients, {args.seconds:g} s each, server and clients in one process")
    print(describe("trivial handler", base_rps, base_lat), "|", base_lag)
    print(describe("GET /api/system/status", rps, lat), "|", lag)
    print(f"ratio status/trivial throughput: {rps / base_rps:.2f}x (goal >= 0.5x)")


if __name__ == "__main__":
    main()
