"""Downloads from the local hub, this engine (verified, fsynced) against the tools a user would pick
instead, all in the same run; medians and ratios, the event loop's lag and the RSS growth.

1. Uncapped loopback, a 1 GiB file: the engine vs `hf_hub_download` vs `curl` (and `curl` + fsync).
2. A CDN that caps each connection at 25 MB/s, a 512 MiB file: the engine vs `aria2c -x8 -s8` vs
   `hf_hub_download` vs `curl`.
3. The same cap, three 256 MiB files as one preset installed by a `comfy-dashboard` server vs
   `aria2c -x8 -s8` fetching them one after another.

Goals: uncapped >= 1.0x durable curl (curl + fsync: the engine fsyncs before the rename) and
>= 2.5x hf_hub_download; capped >= 1.0x aria2c (time ratio) and
>= 6x hf_hub_download; loop lag p99 < 20 ms; RSS growth < 150 MB with 16 connections.

    python bench/download.py [--runs 3] [--size-mb 1024] [--capped-mb 512] [--preset-mb 256] [--skip-slow]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hub import FakeHub, running_hub  # noqa: E402
from processes import free_port  # noqa: E402

from bench.harness import LagProbe, percentile  # noqa: E402
from dashboard.services.downloads.sources import Tokens  # noqa: E402
from dashboard.services.downloads.transfer import READ_BUFFER, Transfer  # noqa: E402

REPO = "bench/model"
CAP = 25_000_000  # bytes a second per connection, as a CDN caps one stream


def serve_hub(files: dict[str, int], cap: int | None, urls: multiprocessing.Queue, stop) -> None:
    """The hub in its own process, so its CPU is not the engine's GIL."""
    hub = FakeHub()
    hashes = {}
    for name, size in files.items():
        hub_file = hub.add_file(REPO, name, size=size)
        hub_file.faults.throttle_bps = cap
        hashes[name] = hub_file.sha256  # hashed once, before any timing
    with running_hub(hub) as url:
        urls.put((url, hashes))
        stop.wait()


class Hub:
    def __init__(self, files: dict[str, int], cap: int | None) -> None:
        self.urls, self.stop = multiprocessing.Queue(), multiprocessing.Event()
        self.process = multiprocessing.Process(target=serve_hub, args=(files, cap, self.urls, self.stop), daemon=True)

    def __enter__(self) -> tuple[str, dict[str, str]]:
        self.process.start()
        return self.urls.get(timeout=300)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.process.join(10)


class RssPeak:
    """Samples a process's RSS every 10 ms in a thread."""

    def __init__(self, pid: int | None = None) -> None:
        self.process = psutil.Process(pid)
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    @property
    def growth(self) -> int:
        return self.peak - self.base


def file_url(url: str, name: str) -> str:
    return f"{url}/{REPO}/resolve/main/{name}"


async def engine_once(url: str, name: str, sha256: str, folder: Path) -> tuple[float, list[float], int]:
    """(seconds, loop lags, most connections at once) for one file through the engine."""
    probe = LagProbe()
    probe.start()
    spec = {"repo": REPO, "repo_file": name, "revision": "main"}
    seen = [0]
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, read_bufsize=READ_BUFFER, auto_decompress=False) as session:
        transfer = Transfer(session, Tokens(hf_endpoint=url))
        start = time.perf_counter()
        result = await transfer.fetch(folder / name, spec, lambda done, total, connections: seen.append(connections))
        elapsed = time.perf_counter() - start
    assert result.verified and result.sha256 == sha256, "engine produced a wrong file"
    return elapsed, probe.lags, max(seen)


def hf_once(url: str, name: str, folder: Path) -> float:
    import huggingface_hub
    from huggingface_hub import constants

    constants.ENDPOINT = url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    start = time.perf_counter()
    huggingface_hub.hf_hub_download(REPO, name, local_dir=folder, token=False)
    return time.perf_counter() - start


def curl_once(url: str, name: str, folder: Path, durable: bool = False) -> float:
    """curl to a file; `durable` also waits for the file to reach the disk, as the engine does."""
    start = time.perf_counter()
    subprocess.run(["curl", "-sSfL", "-o", str(folder / name), file_url(url, name)], check=True)
    if durable:
        fd = os.open(folder / name, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - start


def aria2c_once(url: str, names: list[str], folder: Path) -> float:
    """aria2c -x8 -s8, one file after another (its defaults otherwise)."""
    start = time.perf_counter()
    for name in names:
        subprocess.run(["aria2c", "-q", "-x8", "-s8", "--allow-overwrite=true", "-d", str(folder), "-o", name,
                        file_url(url, name)], check=True)
    return time.perf_counter() - start


def call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def preset_once(hub_url: str, files: dict[str, int], work: Path) -> tuple[float, int, int]:
    """A `comfy-dashboard` server installs the files as one preset: (seconds, RSS growth, connections seen)."""
    workspace = work / "workspace"
    presets = workspace / ".dashboard" / "presets"
    presets.mkdir(parents=True)
    (presets / "BENCH.yaml").write_text(yaml.safe_dump({
        "id": "BENCH", "name": "Bench", "category": "Image Generation", "type": "image",
        "files": [{"path": f"checkpoints/{name}", "source": {"repo": REPO, "file": name}, "size": size}
                  for name, size in files.items()]}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "HF_"))}
    env.update(HF_ENDPOINT=hub_url, DASHBOARD_OFFICIAL_TEMPLATES="false", DASHBOARD_RATE_LIMIT="0",
               PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port), "--workspace", str(workspace)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "serving on" in server.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        connections = 0
        with RssPeak(server.pid) as rss:
            start = time.perf_counter()
            download_id = call(base + "/api/presets/BENCH/install", "POST", {})["download_id"]
            while (d := call(f"{base}/api/downloads/{download_id}"))["status"] not in ("completed", "failed"):
                connections = max(connections, call(base + "/api/downloads/settings")["connections_in_use"])
                time.sleep(0.1)
            elapsed = time.perf_counter() - start
        assert d["status"] == "completed", d
        return elapsed, rss.growth, connections
    finally:
        server.terminate()
        server.wait(30)


def timed(runs: int, work: Path, fn: Callable[[Path], float]) -> list[float]:
    """One untimed warm-up, then `runs` timed runs, each in a fresh folder."""
    times = []
    for run in range(runs + 1):
        folder = Path(tempfile.mkdtemp(dir=work))
        elapsed = fn(folder)
        shutil.rmtree(folder)
        if run:
            times.append(elapsed)
    return times


def report(title: str, size: int, times: dict[str, list[float]]) -> dict[str, float]:
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(title)
    for name, t in times.items():
        print(f"  {name:<22} {size / medians[name] / 1e6:8.0f} MB/s   ({', '.join(f'{x:.2f}' for x in t)} s)")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--capped-mb", type=int, default=512)
    parser.add_argument("--preset-mb", type=int, default=256)
    parser.add_argument("--skip-slow", action="store_true", help="leave out the single-stream tools at the cap")
    args = parser.parse_args()
    mib = 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    lags: list[float] = []
    rss_growth = 0
    try:
        # 1. uncapped loopback
        size, name = args.size_mb * mib, "uncapped.safetensors"
        with Hub({name: size}, None) as (url, hashes):
            def engine(folder: Path) -> float:
                nonlocal rss_growth
                with RssPeak() as rss:
                    elapsed, run_lags, _ = asyncio.run(engine_once(url, name, hashes[name], folder))
                lags.extend(run_lags)
                rss_growth = max(rss_growth, rss.growth)
                return elapsed

            uncapped = report(f"{args.size_mb} MiB over uncapped loopback, medians of {args.runs}:", size, {
                "engine (verified)": timed(args.runs, work, engine),
                "hf_hub_download": timed(args.runs, work, lambda f: hf_once(url, name, f)),
                "curl": timed(args.runs, work, lambda f: curl_once(url, name, f)),
                "curl + fsync": timed(args.runs, work, lambda f: curl_once(url, name, f, durable=True)),
            })

        # 2. one file at 25 MB/s per connection
        size, name = args.capped_mb * mib, "capped.safetensors"
        connections = [0]
        with Hub({name: size}, CAP) as (url, hashes):
            def capped_engine(folder: Path) -> float:
                elapsed, run_lags, most = asyncio.run(engine_once(url, name, hashes[name], folder))
                lags.extend(run_lags)
                connections[0] = max(connections[0], most)
                return elapsed

            tools = {"engine (verified)": timed(args.runs, work, capped_engine),
                     "aria2c -x8 -s8": timed(args.runs, work, lambda f: aria2c_once(url, [name], f))}
            if not args.skip_slow:  # one run each: a single stream at the cap takes size / 25 MB/s
                tools["hf_hub_download"] = timed(1, work, lambda f: hf_once(url, name, f))
                tools["curl"] = timed(1, work, lambda f: curl_once(url, name, f))
            capped = report(f"{args.capped_mb} MiB at 25 MB/s per connection, medians:", size, tools)

        # 3. three files as one preset, through a server
        files = {f"part{i}.safetensors": args.preset_mb * mib for i in range(3)}
        preset_growth, preset_connections = 0, 0
        with Hub(files, CAP) as (url, _hashes):
            def preset(folder: Path) -> float:
                nonlocal preset_growth, preset_connections
                elapsed, growth, most = preset_once(url, files, folder)
                preset_growth, preset_connections = max(preset_growth, growth), max(preset_connections, most)
                return elapsed

            together = report(f"3 x {args.preset_mb} MiB as one preset at 25 MB/s per connection, medians:",
                              sum(files.values()), {
                                  "dashboard server": timed(args.runs, work, preset),
                                  "aria2c one after another": timed(args.runs, work,
                                                                    lambda f: aria2c_once(url, list(files), f)),
                              })
    finally:
        shutil.rmtree(work, ignore_errors=True)

    engine = uncapped["engine (verified)"]
    print(f"uncapped: engine / curl + fsync {uncapped['curl + fsync'] / engine:.2f}x (goal >= 1.0x: durable, "
          f"as the engine is), / curl {uncapped['curl'] / engine:.2f}x (to the page cache, unverified), "
          f"/ hf_hub_download {uncapped['hf_hub_download'] / engine:.2f}x (goal >= 2.5x)")
    engine = capped["engine (verified)"]
    print(f"capped: engine / aria2c -x8 {capped['aria2c -x8 -s8'] / engine:.2f}x (goal >= 1.0x), "
          f"up to {connections[0]} connections", end="")
    if "hf_hub_download" in capped:
        print(f", / hf_hub_download {capped['hf_hub_download'] / engine:.2f}x (goal >= 6x), "
              f"/ curl {capped['curl'] / engine:.2f}x", end="")
    print()
    print(f"preset: server / aria2c one after another "
          f"{together['aria2c one after another'] / together['dashboard server']:.2f}x, "
          f"up to {preset_connections} connections")
    print(f"loop lag during engine downloads: p50 {percentile(lags, 50):.2f} ms, p99 {percentile(lags, 99):.2f} ms "
          "(goal p99 < 20 ms)")
    print(f"peak RSS growth: engine {rss_growth / 1e6:.1f} MB, server with {preset_connections} connections "
          f"{preset_growth / 1e6:.1f} MB (goal < 150 MB)")


if __name__ == "__main__":
    main()
