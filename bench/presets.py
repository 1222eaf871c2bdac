"""GET /api/presets?search=... over 2,000 synthetic presets vs GET /health, same run.

Prints requests/s, latency percentiles, the server loop's lag, and the ratio. Goal: >= 0.3x the
health endpoint's throughput.

    python bench/presets.py [--presets 2000] [--clients 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ThreadedServer, describe, load
from dashboard.app import create_app
from dashboard.config import Settings

WORDS = ["wan", "flux", "sdxl", "video", "image", "audio", "lora", "turbo", "edit", "upscale"]
CATEGORIES = [("Video Generation", "video"), ("Image Generation", "image"), ("Audio Generation", "audio")]


def write_presets(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        category, kind = CATEGORIES[i % 3]
        words = [WORDS[i % len(WORDS)], WORDS[(i * 7) % len(WORDS)]]
        files = "\n".join(
            f"  - path: loras/bench/p{i}_{j}.safetensors\n"
            f"    source: {{repo: bench/repo{i}, file: p{i}_{j}.safetensors}}\n    size: {1_000_000 + j}"
            for j in range(3))
        (folder / f"p{i}.yaml").write_text(
            f"id: BENCH_{i}\nname: Bench preset {i} {words[0]}\ncategory: {category}\ntype: {kind}\n"
            f"description: A synthetic preset about {words[1]} number {i}.\ntags: [{words[0]}, {words[1]}]\n"
            f"files:\n{files}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    settings = Settings.from_env({}, workspace=str(workspace), official_templates="false",
                                 rate_limit="10000000")  # the limiter runs, never refuses
    write_presets(settings.data_dir / "presets", args.presets)

    with ThreadedServer(lambda: create_app(settings)) as server:
        search = server.url + "/api/presets?search=wan%20video"
        body = asyncio.run(_fetch(search))
        assert body["total"] >= args.presets, body["total"]
        results = {}
        for name, url in (("GET /health", server.url + "/health"), ("GET /api/presets?search=...", search)):
            asyncio.run(load(url, 5, 0.5))
            server.probe.reset()
            rps, latencies = asyncio.run(load(url, args.clients, args.seconds))
            results[name] = (rps, latencies, server.probe.summary())

    print(f"{body['total']} presets, search matched {body['filtered']}; {args.clients} concurrent clients, "
          f"{args.seconds:g} s each")
    for name, (rps, latencies, lag) in results.items():
        print(describe(name, rps, latencies), "|", lag)
    health, presets = results["GET /health"][0], results["GET /api/presets?search=..."][0]
    print(f"ratio presets search/health throughput: {presets / health:.2f}x (goal >= 0.3x)")


async def _fetch(url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json()


if __name__ == "__main__":
    main()
