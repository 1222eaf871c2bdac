"""A 1 GiB file from the local hub over loopback: this engine (with sha256 verification) vs
`hf_hub_download` vs `curl` to a file, 3 runs each after one untimed warm-up round, same run;
medians and ratios, plus the event loop's lag p99 and the peak RSS growth during the engine's
downloads.

Goals: >= 2.5x hf_hub_download, >= 0.6x curl, loop lag p99 < 20 ms, RSS growth < 100 MB.

    python bench/download.py [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hub import FakeHub, running_hub  # noqa: E402

from bench.harness import LagProbe, percentile  # noqa: E402
from dashboard.services.downloads.sources import Tokens  # noqa: E402
from dashboard.services.downloads.transfer import READ_BUFFER, Transfer  # noqa: E402

REPO, FILE = "bench/model", "model.safetensors"


def serve_hub(size: int, urls: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    hub = FakeHub()
    hub.add_file(REPO, FILE, size=size)
    _ = hub.repos[REPO]["main"][FILE].sha256  # hash once, before any timing
    with running_hub(hub) as url:
        urls.put((url, hub.repos[REPO]["main"][FILE].sha256))
        stop.wait()


class RssPeak:
    """Samples this process's RSS every 10 ms in a thread."""

    def __init__(self) -> None:
        self.process = psutil.Process()
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
            self.peak = max(self.peak, self.process.memory_info().rss)


async def engine_once(url: str, sha256: str, folder: Path) -> tuple[float, list[float]]:
    probe = LagProbe()
    probe.start()
    spec = {"repo": REPO, "repo_file": FILE, "revision": "main"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, read_bufsize=READ_BUFFER) as session:
        transfer = Transfer(session, Tokens(hf_endpoint=url))
        start = time.perf_counter()
        result = await transfer.fetch(folder / FILE, spec, lambda done, total: None)
        elapsed = time.perf_counter() - start
    assert result.verified and result.sha256 == sha256, "engine produced a wrong file"
    return elapsed, probe.lags


def hf_once(url: str, folder: Path) -> float:
    import huggingface_hub
    from huggingface_hub import constants

    constants.ENDPOINT = url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    start = time.perf_counter()
    huggingface_hub.hf_hub_download(REPO, FILE, local_dir=folder, token=False)
    return time.perf_counter() - start


def curl_once(url: str, folder: Path, durable: bool = False) -> float:
    """curl to a file; `durable` also waits for the file to reach the disk, as the engine does."""
    start = time.perf_counter()
    subprocess.run(["curl", "-sSfL", "-o", str(folder / FILE), f"{url}/{REPO}/resolve/main/{FILE}"], check=True)
    if durable:
        fd = os.open(folder / FILE, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    urls, stop = multiprocessing.Queue(), multiprocessing.Event()
    hub_process = multiprocessing.Process(target=serve_hub, args=(size, urls, stop), daemon=True)
    hub_process.start()
    url, sha256 = urls.get(timeout=120)
    work = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    times: dict[str, list[float]] = {"engine (verified)": [], "hf_hub_download": [], "curl": [], "curl + fsync": []}
    lags: list[float] = []
    rss_growth = 0
    try:
        # One untimed round first: imports, HTTP clients and the hub's first serve are paid by no tool.
        for name in times:
            folder = work / f"warmup-{name.split()[0]}"
            folder.mkdir()
            if name.startswith("engine"):
                asyncio.run(engine_once(url, sha256, folder))
            elif name.startswith("curl"):
                curl_once(url, folder)
            else:
                hf_once(url, folder)
            shutil.rmtree(folder)
        for run in range(args.runs):
            for name in times:
                folder = work / f"{name.split()[0]}-{run}"
                folder.mkdir()
                if name.startswith("engine"):
                    with RssPeak() as rss:
                        elapsed, run_lags = asyncio.run(engine_once(url, sha256, folder))
                    lags += run_lags
                    rss_growth = max(rss_growth, rss.peak - rss.base)
                elif name.startswith("curl"):
                    elapsed = curl_once(url, folder, durable=name.endswith("fsync"))
                else:
                    elapsed = hf_once(url, folder)
                times[name].append(elapsed)
                shutil.rmtree(folder)
    finally:
        stop.set()
        hub_process.join(10)
        shutil.rmtree(work, ignore_errors=True)

    speeds = {name: size / statistics.median(t) / 1e6 for name, t in times.items()}
    print(f"{args.size_mb} MiB over loopback, {args.runs} runs each, medians:")
    for name, speed in speeds.items():
        print(f"  {name:<20} {speed:8.0f} MB/s   ({', '.join(f'{t:.2f}' for t in times[name])} s)")
    engine = speeds["engine (verified)"]
    print(f"engine / hf_hub_download: {engine / speeds['hf_hub_download']:.2f}x (goal >= 2.5x)")
    print(f"engine / curl:            {engine / speeds['curl']:.2f}x (goal >= 0.6x)")
    print(f"engine / curl + fsync:    {engine / speeds['curl + fsync']:.2f}x (the engine fsyncs before the rename)")
    print(f"loop lag during engine downloads: p50 {percentile(lags, 50):.2f} ms, p99 {percentile(lags, 99):.2f} ms "
          "(goal p99 < 20 ms)")
    print(f"peak RSS growth during engine downloads: {rss_growth / 1e6:.1f} MB (goal < 100 MB)")


if __name__ == "__main__":
    main()
