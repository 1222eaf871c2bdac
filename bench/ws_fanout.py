"""WebSocket fan-out: 500 clients subscribed to `downloads`, 20 progress events a second for 10 s.

Prints delivery latency p50/p99 and the server loop's lag; then the same with one more client that
never reads. Goal: p99 < 100 ms, and the stalled client raises the others' p99 by at most 1.5x.
The server runs in its own process (as in production); the clients share this one.

    python bench/ws_fanout.py [--clients 500] [--rate 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import LagProbe, percentile  # noqa: E402


async def serve(port: int, clients: int, rate: float, seconds: float) -> None:
    """The server side: wait for `clients` subscribers, publish, report loop lag on stdout."""
    from aiohttp import web

    from dashboard.api.context import HUB, SERVICES
    from dashboard.app import create_app
    from dashboard.config import Settings

    workspace = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    app = create_app(Settings.from_env({}, workspace=str(workspace), official_templates="false",
                                       rate_limit="0", status_interval="3600"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    hub, bus = app[HUB], app[SERVICES].bus
    while sum("downloads" in c.channels for c in hub.connections) < clients:
        await asyncio.sleep(0.05)
    probe = LagProbe()
    probe.start()
    interval = 1 / rate
    start = time.monotonic()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
        bus.publish("download_progress", {"download_id": f"dl_{n % 20}", "progress": n, "sent_at": time.time()},
                    "downloads")
    bus.publish("download_complete", {"download_id": "end", "status": "success"}, "downloads")
    await asyncio.sleep(0.5)
    print(json.dumps({"lag_p50": percentile(probe.lags, 50), "lag_p99": percentile(probe.lags, 99),
                      "dropped": sum(c.dropped for c in hub.connections)}), flush=True)
    await runner.cleanup()


async def run_clients(url: str, clients: int, stalled: bool) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = [await session.ws_connect(url) for _ in range(clients)]
        silent = await session.ws_connect(url) if stalled else None

        async def listen(socket) -> None:
            await socket.send_json({"type": "subscribe", "channels": ["downloads"]})
            async for message in socket:
                data = json.loads(message.data)
                if data["type"] == "download_progress":
                    latencies.append((time.time() - data["data"]["sent_at"]) * 1000)
                elif data["type"] == "download_complete":
                    return

        if silent is not None:
            await silent.send_json({"type": "subscribe", "channels": ["downloads"]})
        await asyncio.gather(*(listen(s) for s in sockets))
        for socket in sockets:
            await socket.close()
        if silent is not None:
            await silent.close()
    return latencies


def phase(clients: int, rate: float, seconds: float, stalled: bool) -> tuple[list[float], dict]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--clients", str(clients + stalled),
                               "--rate", str(rate), "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    latencies = asyncio.run(run_clients(f"http://127.0.0.1:{port}/ws", clients, stalled))
    report = json.loads(server.stdout.readline())
    server.wait(30)
    return latencies, report


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.clients, args.rate, args.seconds))
        return
    results = {}
    for stalled in (False, True):
        latencies, report = phase(args.clients, args.rate, args.seconds, stalled)
        results[stalled] = percentile(latencies, 99)
        label = "with one stalled client" if stalled else "all clients reading"
        print(f"{label:<26} delivered {len(latencies)}  latency p50 {percentile(latencies, 50):6.1f} ms  "
              f"p99 {percentile(latencies, 99):6.1f} ms | server loop lag p50 {report['lag_p50']:.1f} ms "
              f"p99 {report['lag_p99']:.1f} ms | dropped clients {report['dropped']}")
    print(f"{args.clients} clients, {args.rate:g} events/s for {args.seconds:g} s; "
          f"p99 goal < 100 ms; stalled/normal p99 ratio: {results[True] / results[False]:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
