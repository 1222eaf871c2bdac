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
import email.utils
import errno
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

from ...errors import ApiError
from .partfile import PartFile
from .sources import Resolved, RetryableError, Tokens, download_failed, request, resolve

log = logging.getLogger("dashboard.downloads")

CHUNK = 1024 * 1024
IN_FLIGHT = 4
#: aiohttp read buffer: big reads mean fewer trips through Python per byte.
READ_BUFFER = 4 * CHUNK
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
#: Kept free on the volume beyond what the download needs.
DISK_MARGIN = 64 * 1024**2


@dataclass(frozen=True)
class FileResult:
    size: int
    sha256: str
    etag: str | None
    commit: str | None
    verified: bool


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
    """Fetches files with one shared HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, tokens: Tokens, retry: RetryPolicy | None = None) -> None:
        self.session = session
        self.tokens = tokens
        self.retry = retry or RetryPolicy()

    async def resolve(self, spec: dict[str, Any]) -> Resolved:
        """Resolve with retries."""
        return await self._with_retries(lambda: resolve(spec, self.tokens, self.session), lambda: 0)

    async def fetch(self, target: Path, spec: dict[str, Any], progress: Callable[[int, int | None], None]
                    ) -> FileResult:
        """Download `spec` to `target`; `progress(bytes on disk, total)` is called as bytes arrive.

        Raises ApiError (DOWNLOAD_FAILED, INSUFFICIENT_STORAGE). Cancelling keeps the `.part`.
        """
        resolved = await self.resolve(spec)
        for attempt in (1, 2):
            result = await self._fetch_once(target, resolved, progress)
            if result.verified or (resolved.sha256 is None and resolved.git_sha1 is None):
                return await self._install(target, result)
            await asyncio.get_running_loop().run_in_executor(None, remove_partial, target)
            if attempt == 1:
                log.warning("%s: hash mismatch, fetching it again from scratch", target.name)
        raise download_failed(
            f"{target.name} did not match its expected hash twice; the source may be corrupt",
            reason="hash_mismatch", file=target.name, expected=resolved.sha256 or resolved.git_sha1,
            actual=result.sha256)

    async def _fetch_once(self, target: Path, resolved: Resolved, progress) -> FileResult:
        loop = asyncio.get_running_loop()
        offset = await loop.run_in_executor(None, _prepare, target, resolved)
        writer = _Writer(part_paths(target)[0], resolved)
        await writer.open(offset)
        try:
            progress(writer.size, resolved.size)
            await self._with_retries(lambda: self._stream(writer, resolved, progress), lambda: writer.size)
            return await writer.finish()
        finally:
            await writer.close()

    async def _stream(self, writer: _Writer, resolved: Resolved, progress) -> None:
        if resolved.size is not None and writer.size == resolved.size:
            return
        headers = {"Accept-Encoding": "identity"}
        if writer.size:
            headers["Range"] = f"bytes={writer.size}-"
        async with await request(self.session, "GET", resolved.url, self.tokens, headers) as response:
            if response.status == 416 and writer.size:
                await writer.restart()  # our .part is not a prefix of this file
                raise RetryableError("server refused the resume range", retry_after=0)
            _check_status(response, resolved)
            if response.status == 200 and writer.size:
                await writer.restart()  # the server ignored Range: start over
            elif response.status == 206 and not _range_starts_at(response, writer.size):
                await writer.restart()
                raise RetryableError("server answered another range", retry_after=0)
            pieces: list[bytes] = []
            pending = 0
            try:
                async for data, _ in response.content.iter_chunks():  # no joining copies, unlike iter_any
                    pieces.append(data)
                    pending += len(data)
                    if pending >= CHUNK:
                        await writer.write(pieces, pending)
                        pieces, pending = [], 0
                        progress(writer.size, resolved.size)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise RetryableError(f"connection lost: {exc.__class__.__name__}") from None
            finally:
                if pieces:
                    await writer.write(pieces, pending)
                progress(writer.size, resolved.size)
        if resolved.size is not None and writer.size < resolved.size:
            raise RetryableError(f"stream ended at {writer.size} of {resolved.size} bytes")

    async def _with_retries(self, attempt_fn, bytes_done: Callable[[], int]):
        attempt = 0
        while True:
            before = bytes_done()
            try:
                return await attempt_fn()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                error = RetryableError(f"connection failed: {exc.__class__.__name__}")
            except RetryableError as exc:
                error = exc
            attempt = 1 if bytes_done() > before else attempt + 1  # the budget resets when bytes flow
            if attempt >= self.retry.attempts:
                raise download_failed(f"Gave up after {attempt} tries: {error}", reason="network", error=str(error))
            delay = self.retry.delay(attempt, error.retry_after)
            log.info("Retrying in %.1f s: %s", delay, error)
            await asyncio.sleep(delay)

    async def _install(self, target: Path, result: FileResult) -> FileResult:
        def move() -> None:
            part, sidecar = part_paths(target)
            os.replace(part, target)
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()

        await asyncio.get_running_loop().run_in_executor(None, move)
        return result


def _check_status(response: aiohttp.ClientResponse, resolved: Resolved) -> None:
    if response.status in (200, 206):
        return
    if response.status in RETRY_STATUSES:
        raise RetryableError(f"server answered {response.status}", _retry_after(response.headers.get("Retry-After")))
    if response.status in (401, 403):
        raise download_failed(f"{resolved.url} refused the download ({response.status}); check your token",
                              reason="unauthorized", url=resolved.url, status=response.status)
    if response.status == 404:
        raise download_failed(f"{resolved.url} does not exist", reason="file_not_found", url=resolved.url)
    raise download_failed(f"{resolved.url} answered {response.status}", reason="http_error", url=resolved.url,
                          status=response.status)


def _range_starts_at(response: aiohttp.ClientResponse, offset: int) -> bool:
    content_range = response.headers.get("Content-Range", "")
    return content_range.startswith(f"bytes {offset}-")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _prepare(target: Path, resolved: Resolved) -> int:
    """Blocking: keep a matching `.part` (return its size) or drop it; check space; write the sidecar."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part, sidecar = part_paths(target)
    meta = {"url": resolved.url, "etag": resolved.etag, "size": resolved.size, "commit": resolved.commit}
    offset = 0
    try:
        if json.loads(sidecar.read_text()) == meta:
            offset = part.stat().st_size
    except (OSError, ValueError):
        pass
    if offset == 0 or (resolved.size is not None and offset > resolved.size):
        remove_partial(target)
        offset = 0
    if resolved.size is not None:
        needed = resolved.size - offset + DISK_MARGIN
        free = shutil.disk_usage(target.parent).free
        if free < needed:
            raise ApiError("INSUFFICIENT_STORAGE", f"Not enough disk space for {target.name}",
                           {"file": target.name, "needed_bytes": needed, "free_bytes": free})
    sidecar.write_text(json.dumps(meta))
    return offset


class _Writer:
    """Hands batches of bytes to the file's writer thread (a `PartFile`), a bounded number behind the loop."""

    def __init__(self, path: Path, resolved: Resolved) -> None:
        self.path = path
        self.resolved = resolved
        self.size = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-writer")
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

    async def restart(self) -> None:
        await self._call(self._open, 0)
        self.size = 0

    async def finish(self) -> FileResult:
        """Write everything to disk and check the hashes."""
        digests = await self._call(self._part.finish)
        expected = self.resolved
        sha256, sha1 = digests[0], digests[1] if len(digests) > 1 else None
        verified = (expected.sha256 is not None and sha256 == expected.sha256) or (
            expected.git_sha1 is not None and sha1 == expected.git_sha1)
        size_ok = expected.size is None or self.size == expected.size
        return FileResult(self.size, sha256, expected.etag, expected.commit, verified and size_ok)

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

    def _failure(self) -> ApiError:
        error = self._error
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return ApiError("INSUFFICIENT_STORAGE", "The disk filled up while downloading", {"file": self.path.name})
        return download_failed(f"Could not write {self.path.name}: {error}", reason="write_error")

    # -- in the writer thread --

    def _open(self, offset: int) -> None:
        self._close()
        hashers = [hashlib.sha256()]
        if self.resolved.git_sha1 is not None and self.resolved.size is not None:
            hashers.append(hashlib.sha1(f"blob {self.resolved.size}\0".encode()))
        self._part = PartFile(self.path, offset, hashers)

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
