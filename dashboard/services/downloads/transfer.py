"""Fetching one file: never a half-written byte where ComfyUI loads from.

Bytes stream into `<final>.part` beside the final file, with a sidecar `<final>.part.json`
recording the URL, etag, size and commit they belong to. A later try resumes with `Range` when
the sidecar still matches. One writer thread per file hashes (sha256, and the git blob sha1 for
small non-LFS files) and writes through a `PartFile` while the loop keeps reading, with a bounded
number of chunks in flight. The result is verified against the catalogue's sha256, else the Hub's, then
`os.replace`d onto the final name. A hash mismatch discards the file and fetches it once more
from scratch before failing. Connection errors, timeouts, 408/429/5xx are retried with backoff
and jitter (honouring Retry-After); the retry budget resets whenever bytes flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ...errors import DashboardError, HashMismatch, InsufficientStorage, NetworkFailure
from ...threads import LOOP_DEFAULT, Threads
from .budget import Bandwidth, Connections
from .limits import download_threads
from .lock import PartLock
from .partfile import PartFile
from .rangefile import RangeFile
from .ranges import MIN_PIECE, Extents, RangePlan
from .records import read_record, vouches_for, write_record
from .segmented import LOOP_BUSY, OneStream, Progress, SegmentedFetch
from .sources import (
    Resolved,
    RetryableError,
    Tokens,
    as_retryable,
    check_status,
    request,
    resolve,
    write_failure,
)

log = logging.getLogger("dashboard.downloads")

CHUNK = 1024 * 1024
IN_FLIGHT = 4
#: aiohttp read buffer: big reads mean fewer trips through Python per byte.
READ_BUFFER = 4 * CHUNK
#: How often a process waiting for another one's `.part` looks again.
LOCK_POLL = 0.5
#: How long a single stream is watched before it may split into several connections, and the
#: first range it asks for (where the split happens when the link is the limit).
SPLIT_WINDOW = 0.05
FIRST_RANGE = 2 * 1024 * 1024
#: Kept free on the volume beyond what the download needs.
DISK_MARGIN = 64 * 1024**2


@dataclass(frozen=True)
class FileResult:
    size: int
    sha256: str
    etag: str | None
    commit: str | None
    verified: bool
    mtime_ns: int | None = None  # of the installed file, as its record says


@dataclass
class RetryPolicy:
    attempts: int = 6
    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cap * 4)
        return min(self.cap, self.base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


def part_paths(target: Path) -> tuple[Path, Path]:
    """The `.part` file and its sidecar for a final path."""
    return target.with_name(target.name + ".part"), target.with_name(target.name + ".part.json")


def remove_partial(target: Path) -> None:
    """Delete a file's `.part` and sidecar (blocking)."""
    for path in part_paths(target):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class Transfer:
    """Fetches files with one shared HTTP session, within shared connection and bandwidth budgets.

    Blocking steps (locks, sidecars, checks, the final move) run in `threads`; each file's bytes go
    through writer threads of its own.
    """

    def __init__(self, session: aiohttp.ClientSession, tokens: Tokens, retry: RetryPolicy | None = None,
                 connections: Connections | None = None, bandwidth: Bandwidth | None = None,
                 min_piece: int = MIN_PIECE, threads: Threads = LOOP_DEFAULT) -> None:
        self.session = session
        self.threads = threads
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.connections = connections or Connections(total=16, per_file=8)
        self.bandwidth = bandwidth or Bandwidth()
        self.min_piece = min_piece

    async def resolve(self, spec: dict[str, Any]) -> Resolved:
        """Resolve with retries."""
        return await self._with_retries(lambda: resolve(spec, self.tokens, self.session, self.threads), lambda: 0)

    async def fetch(self, target: Path, spec: dict[str, Any], progress: Progress,
                    record: dict[str, Any] | None = None) -> FileResult:
        """Download `spec` to `target`; `progress(bytes received, total, connections)` is called as
        bytes arrive. The installed file gets its record (`records.py`, with `record`'s fields)
        before the lock is let go, so a process waiting for it finds the file verified.

        Raises DownloadFailed or InsufficientStorage. Cancelling keeps the `.part`. Only
        the process holding the `.part`'s lock writes it: while another one does, this one waits,
        reporting the other's progress, and then takes over what is left, if anything.
        """
        resolved = await self.resolve(spec)
        run = self.threads.run
        lock = PartLock(target)
        while not await run(lock.try_acquire):
            progress(await run(_bytes_held_or_zero, target), resolved.size, 0)
            await asyncio.sleep(LOCK_POLL)
        try:
            done = await run(_done_elsewhere, target, resolved)
            if done is not None:
                return done
            result = await self._fetch_locked(target, resolved, progress)
            written = await run(write_record, target, {
                **(record or {}), "sha256": result.sha256, "etag": result.etag, "commit_hash": result.commit})
            return dataclasses.replace(result, mtime_ns=written["mtime_ns"])
        finally:
            await run(lock.release)

    async def _fetch_locked(self, target: Path, resolved: Resolved, progress: Progress) -> FileResult:
        for attempt in (1, 2):
            if self._segmentable(resolved) and not await self.threads.run(_holds_a_prefix, target, resolved):
                result = _Split(_hashers(resolved), 0)  # ranges on disk from before: fetch what is missing
            else:
                result = await self._fetch_once(target, resolved, progress, may_split=self._segmentable(resolved))
            if isinstance(result, _Split):
                try:
                    result = await self._fetch_ranges(target, resolved, progress, result)
                except OneStream:
                    result = await self._fetch_once(target, resolved, progress)
            if result.verified or (resolved.sha256 is None and resolved.git_sha1 is None):
                return await self._install(target, result)
            await self.threads.run(remove_partial, target)
            if attempt == 1:
                log.warning("%s: hash mismatch, fetching it again from scratch", target.name)
        raise HashMismatch(f"{target.name} did not match its expected hash twice; the source may be corrupt",
                           {"file": target.name, "expected": resolved.sha256 or resolved.git_sha1,
                            "actual": result.sha256})

    def _segmentable(self, resolved: Resolved) -> bool:
        """Whether splitting could help: a known size of at least two pieces, and more than one connection."""
        return resolved.size is not None and resolved.size >= 2 * self.min_piece and self.connections.per_file > 1

    async def _fetch_ranges(self, target: Path, resolved: Resolved, progress: Progress, split: _Split) -> FileResult:
        """Fetch the missing ranges over several connections, going on from a single stream's
        hashes. Raises OneStream (nothing lost: the sidecar keeps what is on disk)."""
        run = self.threads.run
        held = await run(_prepare, target, resolved, True)
        part_path, sidecar = part_paths(target)
        hashers, hashed = (split.hashers, split.hashed) if held.prefix() >= split.hashed else (_hashers(resolved), 0)
        part = await run(RangeFile, part_path, resolved.size, held, hashers, hashed)
        meta = _meta(resolved)
        try:
            fetch = SegmentedFetch(self, part, resolved, RangePlan(resolved.size, held, self.min_piece), progress,
                                   lambda ranges: _write_sidecar(sidecar, {**meta, "ranges": ranges}))
            await fetch.run()
            digests = await run(part.finish)
        except OSError as exc:
            raise write_failure(exc, part_path) from None
        finally:
            await run(part.close)
        return _result(resolved, part.size, digests)

    async def _fetch_once(self, target: Path, resolved: Resolved, progress: Progress,
                          may_split: bool = False) -> FileResult | _Split:
        """One stream. With `may_split`, it asks for a first range only, and when the stream leaves the
        loop idle (the link is the limit) it stops there and hands its hashes over, for the rest to
        come over several connections; else it goes on to the end."""
        held = await self.threads.run(_prepare, target, resolved, False)
        writer = _Writer(part_paths(target)[0], resolved)
        await writer.open(held.prefix())
        await self.connections.acquire(writer)

        def stream_to(end: int | None) -> asyncio.Task:
            return asyncio.create_task(self._with_retries(lambda: self._stream(writer, resolved, progress, end),
                                                          lambda: writer.size))

        stream = stream_to(min(resolved.size, writer.size + FIRST_RANGE) if may_split else None)
        watch = asyncio.create_task(self._link_bound(writer, resolved)) if may_split else None
        try:
            progress(writer.size, resolved.size, 1)
            if watch is not None:
                await stream  # the first range: it ends cleanly where several connections can take over
                if not watch.done() and writer.size < resolved.size:  # a fast link: go on while watching
                    stream = stream_to(None)
                    await asyncio.wait({stream, watch}, return_when=asyncio.FIRST_COMPLETED)
                if watch.done() and watch.result() and writer.size < resolved.size:
                    stream.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await stream
                    return _Split(await writer.hand_over(), writer.size)
                if stream.done() and writer.size < resolved.size:
                    stream = stream_to(None)
            await stream
            return await writer.finish()
        finally:
            for task in (stream, watch):
                if task is not None:
                    task.cancel()
            self.connections.release(writer)
            await writer.close()

    async def _link_bound(self, writer: _Writer, resolved: Resolved) -> bool:
        """Whether the stream leaves the loop idle (the link, not this process, limits it) with enough left
        to split. Looks at one window after the first bytes."""
        while writer.size == 0:
            await asyncio.sleep(SPLIT_WINDOW / 4)
        start, cpu = time.monotonic(), time.thread_time()  # the loop's own thread
        await asyncio.sleep(SPLIT_WINDOW)
        busy = (time.thread_time() - cpu) / max(1e-6, time.monotonic() - start)
        return busy < LOOP_BUSY and resolved.size - writer.size >= 2 * self.min_piece

    async def _stream(self, writer: _Writer, resolved: Resolved, progress, end: int | None = None) -> None:
        """Stream the file from what the writer has to `end` (None: to the end of the file)."""
        end = end or resolved.size
        if end is not None and writer.size >= end:
            return
        headers = {"Accept-Encoding": "identity"}
        if writer.size or end != resolved.size:
            headers["Range"] = f"bytes={writer.size}-{end - 1 if end != resolved.size else ''}"
        async with await request(self.session, "GET", resolved.url, self.tokens, headers) as response:
            if response.status == 416 and writer.size:
                await writer.restart()  # our .part is not a prefix of this file
                raise RetryableError("server refused the resume range", retry_after=0)
            check_status(response, resolved)
            if response.status == 200 and writer.size:
                await writer.restart()  # the server ignored Range: start over
            elif response.status == 206 and not _range_starts_at(response, writer.size):
                await writer.restart()
                raise RetryableError("server answered another range", retry_after=0)
            pieces: list[bytes] = []
            pending = 0
            try:
                async for data, _ in response.content.iter_chunks():  # no joining copies, unlike iter_any
                    await self.bandwidth.take(len(data))
                    pieces.append(data)
                    pending += len(data)
                    if pending >= CHUNK:
                        await writer.write(pieces, pending)
                        pieces, pending = [], 0
                        progress(writer.size, resolved.size, 1)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise as_retryable(exc) from None
            finally:
                if pieces:
                    await writer.write(pieces, pending)
                progress(writer.size, resolved.size, 1)
        if end is not None and writer.size < end:
            raise RetryableError(f"stream ended at {writer.size} of {end} bytes")

    async def _with_retries(self, attempt_fn, bytes_done: Callable[[], int]):
        attempt = 0
        while True:
            before = bytes_done()
            try:
                return await attempt_fn()
            except (aiohttp.ClientError, asyncio.TimeoutError, RetryableError) as exc:
                error = as_retryable(exc)
            attempt = 1 if bytes_done() > before else attempt + 1  # the budget resets when bytes flow
            if attempt >= self.retry.attempts:
                raise NetworkFailure(f"Gave up after {attempt} tries: {error}", {"error": str(error)})
            delay = self.retry.delay(attempt, error.retry_after)
            log.info("Retrying in %.1f s: %s", delay, error)
            await asyncio.sleep(delay)

    async def _install(self, target: Path, result: FileResult) -> FileResult:
        def move() -> None:
            part, sidecar = part_paths(target)
            os.replace(part, target)
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()

        await self.threads.run(move)
        return result


def _range_starts_at(response: aiohttp.ClientResponse, offset: int) -> bool:
    content_range = response.headers.get("Content-Range", "")
    return content_range.startswith(f"bytes {offset}-")


def _bytes_held_or_zero(target: Path) -> int:
    try:
        return bytes_held(target)
    except OSError:
        return 0


def _done_elsewhere(target: Path, resolved: Resolved) -> FileResult | None:
    """Blocking: the file, if another process already put it at `target`, verified (its record says so)."""
    record = read_record(target)
    try:
        stat = target.stat()
    except FileNotFoundError:
        return None
    if record is None or (resolved.size is not None and stat.st_size != resolved.size):
        return None
    expected = resolved.sha256 or record.get("sha256")
    if not vouches_for(record, stat.st_size, stat.st_mtime, expected):
        return None
    return FileResult(stat.st_size, record["sha256"], resolved.etag, resolved.commit, expected is not None,
                      stat.st_mtime_ns)


def bytes_held(target: Path) -> int:
    """Blocking: how many bytes of `target` its `.part` holds (by its sidecar's ranges, else its size)."""
    held = _held(target)
    return held.total() if held is not None else part_paths(target)[0].stat().st_size


def _held(target: Path, resolved: Resolved | None = None) -> Extents | None:
    """Blocking: the ranges the `.part` holds by its sidecar (a single stream's sidecar has none: the
    whole `.part` is a prefix); None without a readable sidecar, or one for another `resolved`."""
    part, sidecar = part_paths(target)
    try:
        on_disk = part.stat().st_size
        recorded = json.loads(sidecar.read_text())
        if resolved is not None and {k: recorded.get(k) for k in _meta(resolved)} != _meta(resolved):
            return None
        return Extents((int(s), min(int(e), on_disk)) for s, e in recorded.get("ranges", [[0, on_disk]]))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class _Split:
    """A single stream stopped to go on over several connections: its hashers have seen `hashed` bytes."""

    hashers: list[Any]
    hashed: int


def _meta(resolved: Resolved) -> dict[str, Any]:
    """What a `.part` belongs to: resume only a `.part` whose sidecar says the same."""
    return {"url": resolved.url, "etag": resolved.etag, "size": resolved.size, "commit": resolved.commit}


def _prepare(target: Path, resolved: Resolved, ranges: bool) -> Extents:
    """Blocking: keep what a matching `.part` holds (its ranges) or drop it; check space; write the
    sidecar (with the ranges when `ranges`, else a single stream's: the `.part` is all prefix)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar = part_paths(target)[1]
    meta = _meta(resolved)
    held = _held(target, resolved) or Extents()
    if not held.total() or (resolved.size is not None and max((e for _s, e in held), default=0) > resolved.size):
        remove_partial(target)
        held = Extents()
    if resolved.size is not None:
        needed = resolved.size - held.total() + DISK_MARGIN
        free = shutil.disk_usage(target.parent).free
        if free < needed:
            raise InsufficientStorage(f"Not enough disk space for {target.name}",
                                      {"file": target.name, "needed_bytes": needed, "free_bytes": free})
    _write_sidecar(sidecar, {**meta, "ranges": held.as_list()} if ranges else meta)
    return held


def _holds_a_prefix(target: Path, resolved: Resolved) -> bool:
    """Blocking: whether what a matching `.part` holds is a prefix of the file (or nothing), so one
    stream can go on from it without dropping ranges fetched beyond it."""
    held = _held(target, resolved)
    return held is None or held.total() == held.prefix()


def _write_sidecar(sidecar: Path, content: dict[str, Any]) -> None:
    """Blocking: replace the sidecar atomically (a kill never leaves half of one)."""
    partial = sidecar.with_name(f"{sidecar.name}.{os.getpid()}")
    partial.write_text(json.dumps(content))
    os.replace(partial, sidecar)


def _hashers(resolved: Resolved) -> list[Any]:
    hashers = [hashlib.sha256()]
    if resolved.git_sha1 is not None and resolved.size is not None:
        hashers.append(hashlib.sha1(f"blob {resolved.size}\0".encode()))
    return hashers


def _result(resolved: Resolved, size: int, digests: list[str]) -> FileResult:
    """The verdict on a complete `.part`: its size and digests against what `resolved` expects."""
    sha256, sha1 = digests[0], digests[1] if len(digests) > 1 else None
    verified = (resolved.sha256 is not None and sha256 == resolved.sha256) or (
        resolved.git_sha1 is not None and sha1 == resolved.git_sha1)
    size_ok = resolved.size is None or size == resolved.size
    return FileResult(size, sha256, resolved.etag, resolved.commit, verified and size_ok)


class _Writer:
    """Hands batches of bytes to the file's writer thread (a `PartFile`), a bounded number behind the loop."""

    def __init__(self, path: Path, resolved: Resolved) -> None:
        self.path = path
        self.resolved = resolved
        self.size = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-writer",
                                        initializer=download_threads.register)
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._loop = asyncio.get_running_loop()
        self._part: PartFile | None = None
        self._error: BaseException | None = None

    async def open(self, offset: int) -> None:
        await self._call(self._open, offset)
        self.size = offset

    async def write(self, pieces: list[bytes], size: int) -> None:
        """Hand bytes to the writer thread; waits only while IN_FLIGHT batches are queued."""
        if self._error is not None:
            raise self._failure()
        await self._slots.acquire()
        future = self._pool.submit(self._write, pieces)
        future.add_done_callback(lambda _f: self._loop.call_soon_threadsafe(self._slots.release))
        self.size += size

    async def hand_over(self) -> list[Any]:
        """Write out and close the `.part`; its hashers, which have seen every byte of it."""
        hashers = self._part.hashers
        await self._call(self._close)
        return hashers

    async def restart(self) -> None:
        await self._call(self._open, 0)
        self.size = 0

    async def finish(self) -> FileResult:
        """Write everything to disk and check the hashes."""
        return _result(self.resolved, self.size, await self._call(self._part.finish))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._call(self._close)
        self._pool.shutdown(wait=False)

    async def _call(self, fn, *args):
        try:
            result = await self._loop.run_in_executor(self._pool, fn, *args)
        except OSError as exc:
            self._error = exc
        if self._error is not None:
            raise self._failure()
        return result

    def _failure(self) -> DashboardError:
        return write_failure(self._error, self.path)

    # -- in the writer thread --

    def _open(self, offset: int) -> None:
        self._close()
        self._part = PartFile(self.path, offset, _hashers(self.resolved))

    def _write(self, pieces: list[bytes]) -> None:
        if self._error is not None:
            return
        try:
            for piece in pieces:
                self._part.append(piece)
        except Exception as exc:  # reported by the next write or by finish()
            self._error = exc

    def _close(self) -> None:
        if self._part is not None:
            part, self._part = self._part, None
            part.close()
