"""Submitting prompts through the dashboard vs through ComfyUI's own POST /prompt, same ComfyUI, same run.

Starts a real ComfyUI (COMFYUI_DIR, COMFYUI_PYTHON) on CPU with this package in its custom_nodes,
holds its worker with a gate prompt so nothing executes while submitting, then sends N model-free
prompts (EmptyImage -> SaveImage) to `/dashboard/api/comfyui/execute` and N to `/prompt`,
alternating, several rounds, clearing the queue between batches. Prints prompts/s per path and
the ratio of the medians. Goal: >= 0.8x.

    python bench/execute.py [--prompts 200] [--clients 1 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from real_comfyui import running_comfyui, write_gate_node  # noqa: E402


def empty_image(prefix: str) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 255}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


async def submit_all(session: aiohttp.ClientSession, url: str, bodies: list[dict], clients: int) -> float:
    """POST every body with `clients` concurrent senders; returns prompts per second."""
    todo = iter(bodies)

    async def sender() -> None:
        for body in todo:
            async with session.post(url, json=body) as response:
                await response.read()
                assert response.status == 200, (response.status, await response.text())

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(clients)))
    return len(bodies) / (time.perf_counter() - started)


async def run(url: str, base: Path, prompts: int, clients_list: list[int], rounds: int) -> None:
    connector = aiohttp.TCPConnector(limit=max(clients_list))
    async with aiohttp.ClientSession(connector=connector) as session:
        release = base / f"gate-{uuid.uuid4().hex}"
        async with session.post(url + "/prompt", json={"prompt": {"1": {"class_type": "DashboardTestGate",
                                                                      "inputs": {"path": str(release)}}}}) as r:
            assert r.status == 200, await r.text()
        paths = {
            "dashboard /dashboard/api/comfyui/execute": (url + "/dashboard/api/comfyui/execute",
                                                         lambda i: {"workflow": empty_image(f"bench_d{i}")}),
            "ComfyUI   /prompt": (url + "/prompt",
                                  lambda i: {"prompt": empty_image(f"bench_c{i}"), "client_id": "bench"}),
        }
        print(f"{prompts} model-free prompts per batch, {rounds} rounds, ComfyUI's worker held (nothing executes)")
        try:
            for clients in clients_list:
                results: dict[str, list[float]] = {name: [] for name in paths}
                for target, body in paths.values():  # warm-up
                    await submit_all(session, target, [body(i) for i in range(20)], clients)
                    await clear(session, url)
                for _ in range(rounds):
                    for name, (target, body) in paths.items():
                        rate = await submit_all(session, target, [body(i) for i in range(prompts)], clients)
                        results[name].append(rate)
                        await clear(session, url)
                for name, rates in results.items():
                    print(f"  {clients} client(s)  {name:<42} median {statistics.median(rates):7.0f} prompts/s  "
                          f"(rounds: {', '.join(f'{r:.0f}' for r in rates)})")
                dashboard, comfy = (statistics.median(r) for r in results.values())
                print(f"  {clients} client(s)  ratio dashboard/ComfyUI submit throughput: {dashboard / comfy:.2f}x "
                      "(goal >= 0.8x)")
        finally:
            release.touch()


async def clear(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url + "/queue", json={"clear": True}) as response:
        assert response.status == 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not (os.environ.get("COMFYUI_DIR") and os.environ.get("COMFYUI_PYTHON")):
        sys.exit("needs a real ComfyUI: set COMFYUI_DIR and COMFYUI_PYTHON (see tests/real_comfyui.py)")
    base = Path(tempfile.mkdtemp(prefix="dashboard-bench-execute-"))
    write_gate_node(base)
    # A limit no run reaches (the limiter still does its work on every request); room for every prompt.
    with running_comfyui(base, {"DASHBOARD_MAX_QUEUE": "100000", "DASHBOARD_RATE_LIMIT": "10000000"}) as url:
        asyncio.run(run(url, base, args.prompts, args.clients, args.rounds))


if __name__ == "__main__":
    main()
