"""The model library's hash scan (`LibraryHashes`), as the dashboard runs it, vs sha256sum and a plain walk.

Each part builds a real `Services` (`UnavailableBackend`, `DASHBOARD_LIBRARY_SCAN=true`) on a temp
workspace, calls `services.library.hashes.scan()` and polls `status()` until it says idle.

1. Hashing: `--gib` GiB of random bytes in `--files` files (half in models/checkpoints, half in
   models/loras/set*/) vs `sha256sum` of the same files (batches of 50 per process, one process at
   a time, as the scan hashes on one thread), in the same run. The page cache is warmed equally:
   the files are synced to disk and read once before either is timed, then sha256sum and a scan
   (a fresh Services with an empty database each time) alternate `--runs` times; the best of each
   counts. Poll: every 50 ms (`--poll`). The hashes are checked against sha256sum's. Where
   `openssl` is on PATH, `openssl dgst -sha256` runs too, for information (no goal): coreutils'
   sha256sum has its own SHA-256 code, OpenSSL (which hashlib uses) the CPU's SHA instructions.
2. Event-loop lag while hashing: a ticker on the Services' loop (sleep 5 ms, record how late each
   wake-up is) during the scans of (1), vs the same ticker on the same loop with the Services idle
   for as long.
3. Warm re-scan: `--small-files` files of 16 bytes in nested folders (type/setN/partM/, about 100
   a folder); one scan hashes them all, then (once the tree is older than the index's
   RACY_SECONDS, so no folder counts as just modified) one unmeasured re-scan settles the index, then
   `--rescans` re-scans where nothing changed, vs a plain `os.walk` + `os.stat` of the same tree,
   interleaved, medians. Poll: every 1 ms (a 50 ms poll would be most of what is measured).

Goals: hashing throughput >= 0.9x sha256sum; loop lag p99 < 20 ms while hashing; warm re-scan
< 2x the plain walk. The temp files are removed at the end (under `--dir`, default the temp dir).

    python bench/library.py [--gib 4] [--files 200] [--small-files 20000] [--runs 2] [--rescans 5]
                            [--poll 0.05] [--dir /tmp] [--quick]

`--quick` is `--gib 0.25 --files 32 --small-files 2000` (well under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import LagProbe, percentile, plain_walk
from dashboard.comfy.backend import UnavailableBackend
from dashboard.comfy.folders import FOLDER_TYPES, ensure_model_folders
from dashboard.config import Settings
from dashboard.services.container import Services
from dashboard.services.model_index import RACY_SECONDS

MiB = 1024 * 1024
GiB = 1024 * MiB
WRITE_CHUNK = 8 * MiB
SHA256SUM_BATCH = 50
TICK = 0.005  # the lag ticker's sleep
#: A second, informative baseline where there is one: OpenSSL's SHA-256 (SHA-NI where the CPU has it),
#: the same library Python's hashlib uses; coreutils' sha256sum has its own, slower code.
OPENSSL = ("openssl", "dgst", "-sha256", "-r") if shutil.which("openssl") else None


def settings_for(workspace: Path) -> Settings:
    return Settings.from_env({}, workspace=str(workspace), library_scan="true", official_templates="false")


# the trees


def make_big(models: Path, total: int, count: int) -> list[Path]:
    """`count` files of random bytes, `total` bytes in all; half in checkpoints, half in loras/set*/."""
    size = total // count
    paths = []
    for i in range(count):
        folder = models / "checkpoints" if i % 2 == 0 else models / "loras" / f"set{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"model_{i:04d}.safetensors"
        with open(path, "wb") as out:
            left = size
            while left:
                n = min(WRITE_CHUNK, left)
                out.write(os.urandom(n))
                left -= n
        paths.append(path)
    return paths


def make_small(models: Path, count: int) -> None:
    """`count` files of 16 bytes in nested folders: <type>/set<N>/part<M>/, about 100 a folder."""
    types = [t for t in FOLDER_TYPES if t != "configs"][:10]
    leaves = max(1, count // 100)
    folders = []
    for leaf in range(leaves):
        folder = models / types[leaf % len(types)] / f"set{leaf // len(types) % 4}" / f"part{leaf // (4 * len(types))}"
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder)
    for i in range(count):
        with open(folders[i % leaves] / f"model_{i:06d}.safetensors", "wb") as out:
            out.write(i.to_bytes(16, "little"))


def read_all(paths: list[Path]) -> float:
    """Read every file once (warms the page cache); seconds."""
    start = time.perf_counter()
    buffer = bytearray(WRITE_CHUNK)
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
    return time.perf_counter() - start


def sha256sum(paths: list[Path], batch: int = SHA256SUM_BATCH, tool: tuple[str, ...] = ("sha256sum",)
              ) -> tuple[float, dict[str, str]]:
    """(seconds, file name -> digest) of `sha256sum` (or `openssl dgst -sha256 -r`, same output) over
    `paths`, `batch` files per process."""
    digests = {}
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        out = subprocess.run([*tool, *map(str, paths[i:i + batch])], check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            digest, name = line.split(None, 1)
            digests[os.path.basename(name.lstrip("*"))] = digest
    return time.perf_counter() - start, digests


# the scans


def forget_database(settings: Settings) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with_suffix = settings.data_dir / f"dashboard.db{suffix}"
        if with_suffix.exists():
            with_suffix.unlink()


async def scan_to_idle(services: Services, poll: float) -> tuple[float, dict]:
    """Seconds from `scan()` until `status()` says idle (polled every `poll` s), and that status."""
    hashes = services.library.hashes
    start = time.perf_counter()
    hashes.scan()
    # The scan's task marks itself scanning when it first runs: `scan()`'s own answer (and status()
    # before the loop has run the task once) can still say idle. One turn of the loop runs it.
    await asyncio.sleep(0)
    status = hashes.status()
    while status["status"] != "idle":
        await asyncio.sleep(poll)
        status = hashes.status()
    return time.perf_counter() - start, status


async def idle_lags(seconds: float) -> list[float]:
    probe = LagProbe(TICK)
    probe.start()
    await asyncio.sleep(seconds)
    probe._task.cancel()
    return probe.lags


async def hash_once(settings: Settings, poll: float) -> tuple[float, dict, dict[str, str], list[float], list[float]]:
    """One scan from an empty database: (seconds, status, name -> sha256, lags while hashing, lags idle)."""
    forget_database(settings)
    services = Services(settings, UnavailableBackend())
    await services.start()
    try:
        await asyncio.sleep(0.2)  # let the start's own work settle
        probe = LagProbe(TICK)
        probe.start()
        elapsed, status = await scan_to_idle(services, poll)
        probe._task.cancel()
        idle = await idle_lags(elapsed)
        digests = {os.path.basename(path): digest for path, digest in services.library.hashes.hashes().items()}
    finally:
        await services.stop()
    return elapsed, status, digests, probe.lags, idle


async def rescans(settings: Settings, models: Path, files: int, count: int,
                  made_at: float) -> tuple[float, list[float], list[float], list[float]]:
    """(first scan s, re-scan seconds, plain walk seconds, loop lags during re-scans), interleaved;
    `made_at`: when the tree was last changed (time.time())."""
    forget_database(settings)
    services = Services(settings, UnavailableBackend())
    await services.start()
    try:
        first, status = await scan_to_idle(services, 0.001)
        assert status["files_total"] == files and status["files_hashed"] == files, status
        # Folders modified within RACY_SECONDS of a scan are listed again by the next: a library
        # that did not change for that long is the case measured, so wait that out, then settle.
        await asyncio.sleep(max(0.0, made_at + RACY_SECONDS + 0.5 - time.time()))
        await scan_to_idle(services, 0.001)
        again: list[float] = []
        walks: list[float] = []
        probe = LagProbe(TICK)
        probe.start()
        lags: list[float] = []
        for _ in range(count):
            await asyncio.sleep(0.02)  # the ticker's wake-up delayed by the walk is not the scan's
            probe.reset()
            elapsed, status = await scan_to_idle(services, 0.001)
            lags += probe.lags
            assert status["files_total"] == files and status["files_hashed"] == files, status
            again.append(elapsed)
            start = time.perf_counter()
            assert plain_walk(models) == files  # on the loop on purpose: nothing else runs meanwhile
            walks.append(time.perf_counter() - start)
        probe._task.cancel()
    finally:
        await services.stop()
    return first, again, walks, lags


# the report


def lag_line(lags: list[float]) -> str:
    return (f"p50 {percentile(lags, 50):6.2f} ms   p99 {percentile(lags, 99):6.2f} ms   "
            f"max {max(lags, default=float('nan')):6.2f} ms   (n={len(lags)})")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="GiB hashed in part 1")
    parser.add_argument("--files", type=int, default=200, help="files those GiB are split into")
    parser.add_argument("--small-files", type=int, default=20_000, help="tiny files re-scanned in part 3")
    parser.add_argument("--runs", type=int, default=2, help="hash runs (sha256sum and scan alternating); best counts")
    parser.add_argument("--rescans", type=int, default=5, help="warm re-scans (and plain walks); medians count")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between status() polls in part 1")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the temp workspaces go")
    parser.add_argument("--quick", action="store_true", help="--gib 0.25 --files 32 --small-files 2000")
    args = parser.parse_args()
    if args.quick:
        args.gib, args.files, args.small_files = 0.25, 32, 2000
    if shutil.which("sha256sum") is None:
        sys.exit("bench/library.py needs sha256sum (GNU coreutils) on PATH")
    logging.basicConfig(level=logging.WARNING)

    total = int(args.gib * GiB) // args.files * args.files
    needed = total + args.small_files * 4096 + 256 * MiB  # a block a tiny file, the databases, slack
    free = shutil.disk_usage(args.dir).free
    if free < needed:
        sys.exit(f"not enough disk space under {args.dir}: {free / GiB:.2f} GiB free, {needed / GiB:.2f} GiB "
                 f"needed; use --gib and --files (or --quick) to scale down, or --dir for another disk")

    root = Path(tempfile.mkdtemp(prefix="dashboard-bench-library-", dir=args.dir))
    try:
        run(args, root, total)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(args, root: Path, total: int) -> None:
    # 1 and 2: hashing and the loop's lag meanwhile
    big = settings_for(root / "big")
    ensure_model_folders(big.models_dir)
    started = time.perf_counter()
    paths = make_big(big.models_dir, total, args.files)
    os.sync()  # no writeback during the timings
    made = time.perf_counter() - started
    warm = read_all(paths)
    cached = "fits" if total < _available_memory() else "DOES NOT fit (both read from disk)"
    ours: list[float] = []
    theirs: list[float] = []
    busy_lags: list[float] = []
    quiet_lags: list[float] = []
    ssl: list[float] = []
    for _ in range(args.runs):
        seconds, expected = sha256sum(paths)
        theirs.append(seconds)
        if OPENSSL:
            seconds, also = sha256sum(paths, tool=OPENSSL)
            assert also == expected, "openssl and sha256sum disagree"
            ssl.append(seconds)
        seconds, status, digests, busy, quiet = asyncio.run(hash_once(big, args.poll))
        assert status["files_total"] == args.files and status["files_hashed"] == args.files, status
        assert status["bytes_hashed"] == total, status
        assert digests == expected, "the scan's hashes differ from sha256sum's"
        ours.append(seconds)
        busy_lags += busy
        quiet_lags += quiet
    shutil.rmtree(root / "big")

    # 3: warm re-scan of many small files
    small = settings_for(root / "small")
    ensure_model_folders(small.models_dir)
    started = time.perf_counter()
    make_small(small.models_dir, args.small_files)
    small_made, small_at = time.perf_counter() - started, time.time()
    assert plain_walk(small.models_dir) == args.small_files  # warms the OS cache, checks the tree
    small_paths = [Path(d, n) for d, _s, names in os.walk(small.models_dir) for n in names]
    small_sum, _ = sha256sum(small_paths, batch=1000)
    first, again, walks, rescan_lags = asyncio.run(rescans(small, small.models_dir, args.small_files, args.rescans,
                                                                small_at))

    best_ours, best_theirs = min(ours), min(theirs)
    ours_rate, theirs_rate = total / best_ours / MiB, total / best_theirs / MiB
    ratio = ours_rate / theirs_rate
    lag99 = percentile(busy_lags, 99)
    again_p50, walk_p50 = statistics.median(again), statistics.median(walks)
    rescan_ratio = again_p50 / walk_p50

    print(f"1. {total / GiB:g} GiB in {args.files} files of {total // args.files / MiB:.1f} MiB (written in "
          f"{made:.1f} s, synced); page cache warmed by reading all once ({total / warm / MiB:.0f} MiB/s) and "
          f"{args.runs} alternating runs each, best counts; the data {cached} in memory; status polled every "
          f"{args.poll * 1000:g} ms")
    print(f"   sha256sum ({SHA256SUM_BATCH} files/process)   {theirs_rate:8.0f} MiB/s   best {best_theirs:6.2f} s   "
          f"runs {', '.join(f'{s:.2f}' for s in theirs)} s")
    if ssl:
        print(f"   openssl dgst -sha256 (info)   {total / min(ssl) / MiB:8.0f} MiB/s   best {min(ssl):6.2f} s   "
              f"runs {', '.join(f'{s:.2f}' for s in ssl)} s   (no goal: the ceiling for one thread)")
    print(f"   scan() to idle                {ours_rate:8.0f} MiB/s   best {best_ours:6.2f} s   "
          f"runs {', '.join(f'{s:.2f}' for s in ours)} s   (hashes match sha256sum's)")
    print(f"   ratio scan / sha256sum throughput: {ratio:.2f}x (goal >= 0.9x) {verdict(ratio >= 0.9)}")
    print(f"2. loop lag, ticker sleeping {TICK * 1000:g} ms on the Services' loop")
    print(f"   idle, as long as each scan     {lag_line(quiet_lags)}")
    print(f"   while hashing                  {lag_line(busy_lags)}")
    print(f"   ratio p99 hashing / idle: {lag99 / max(percentile(quiet_lags, 99), 1e-3):.2f}x; p99 {lag99:.2f} ms "
          f"(goal < 20 ms) {verdict(lag99 < 20)}")
    print(f"3. {args.small_files} files of 16 bytes in {max(1, args.small_files // 100)} nested folders (made in "
          f"{small_made:.1f} s); first scan hashed them in {first:.2f} s ({args.small_files / first:.0f} files/s; "
          f"sha256sum, 1000 files/process: {small_sum:.2f} s); status polled every 1 ms")
    print(f"   plain os.walk + stat           median {walk_p50 * 1000:7.1f} ms   "
          f"runs {', '.join(f'{s * 1000:.0f}' for s in walks)} ms")
    print(f"   warm scan() to idle            median {again_p50 * 1000:7.1f} ms   "
          f"runs {', '.join(f'{s * 1000:.0f}' for s in again)} ms   | loop lag {lag_line(rescan_lags)}")
    print(f"   ratio warm re-scan / plain walk: {rescan_ratio:.2f}x (goal < 2x) {verdict(rescan_ratio < 2)}")


def _available_memory() -> int:
    try:
        import psutil

        return psutil.virtual_memory().available
    except Exception:
        return 1 << 62


if __name__ == "__main__":
    main()
