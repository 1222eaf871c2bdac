"""One file over several connections: ranges, work stealing, a connection ramp, resume per range.

A file starts as one plain stream (`Transfer`); when that stream leaves the event loop idle (the
link, not this process, is the limit) the rest is fetched here: with `FIRST_STEP` connections,
then twice as many each step, as long as each step makes the file's throughput grow and the loop
has room; a step that does not is taken back (its connections leave after their piece).
Everything within the connection budget (`Connections`), pieces handed out by the `RangePlan`.
Every byte read passes the bandwidth budget (`Bandwidth`). The Hub's redirect is resolved once:
later connections go straight to the CDN URL it gave, and when that URL expires (its signed
`Expires` passes, or the CDN answers 403/410) the next connection asks the Hub again. The sidecar
records the ranges on disk as they grow, so a pause, a dropped connection, a restart or a
`kill -9` fetch only what is missing. A connection that fails retries with backoff while the
others carry on. A server that ignores Range raises `OneStream`: the caller goes on with one
plain stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp

from ...errors import NetworkFailure
from .budget import Bandwidth, Connections
from .limits import download_threads
from .rangefile import RangeFile, RangeStream
from .ranges import RangePlan, Segment
from .sources import Resolved, RetryableError, as_retryable, check_status, request

log = logging.getLogger("dashboard.downloads")

#: Bytes handed to the copy thread at once, and how many such batches a connection may have queued.
BATCH = 1024 * 1024
IN_FLIGHT = 2
#: aiohttp's read buffer per connection (memory: connections x this).
READ_BUFFER = 1024 * 1024
#: Connections once the server has answered a range (the single stream before showed that the
#: link, not this process, is the limit); each later step doubles, up to the per-file limit.
FIRST_STEP = 8
#: How often the ramp looks at the throughput, and the growth a step must bring to be kept.
RAMP_INTERVAL = 0.1
RAMP_GROWTH = 1.1
#: Past this share of its time busy, the event loop (not the network) is the limit: no more connections.
LOOP_BUSY = 0.3
#: Write the sidecar's ranges again after this many more bytes reached the disk.
RECORD_EVERY = 2 * 1024 * 1024
#: ... but not more often than this (seconds).
RECORD_INTERVAL = 0.1
#: A signed URL this close to its expiry is not used any more.
EXPIRY_MARGIN = 10.0

Progress = Callable[[int, int | None, int], None]


class OneStream(Exception):
    """The server answered a range request with the whole file: go on with one plain stream."""


class SegmentedFetch:
    """Fetches the missing ranges of `part` from `resolved.url`."""

    def __init__(self, transfer: Any, part: RangeFile, resolved: Resolved, plan: RangePlan,
                 progress: Progress, record: Callable[[list[list[int]]], None]) -> None:
        self.transfer = transfer
        self.part = part
        self.resolved = resolved
        self.plan = plan
        self.progress = progress
        self.record = record  # blocking: writes the sidecar with these ranges
        self.budget: Connections = transfer.connections
        self.bandwidth: Bandwidth = transfer.bandwidth
        self.cdn_url: str | None = None
        self.ranges_ok = False
        self.target = 1  # connections the ramp wants now (FIRST_STEP once the server has answered a range)
        self._tasks: set[asyncio.Task] = set()
        self._copy = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-copy",
                                        initializer=download_threads.register)
        self._loop = asyncio.get_running_loop()
        self._received = 0
        self._recorded = part.on_disk_bytes()
        self._recorded_at = 0.0
        self._recording: asyncio.Future | None = None

    @property
    def connections(self) -> int:
        """Connections fetching this file now."""
        return len(self._tasks)

    @property
    def per_file(self) -> int:
        """The most connections this file may use (a setting that may change while it runs)."""
        return self.budget.per_file

    async def run(self) -> None:
        """Fetch until every range is on disk. Raises ApiError, or OneStream."""
        await self.budget.acquire(self)
        self._spawn()
        ramp = asyncio.create_task(self._ramp())
        try:
            while self._tasks:
                done, _ = await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                self._tasks -= done
                for task in done:
                    if task.exception() is not None:
                        raise task.exception()
                if not self._tasks and not self.plan.finished:  # all gave their connection back
                    await self.budget.acquire(self)
                    self._spawn()
        finally:
            ramp.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(ramp, *self._tasks, return_exceptions=True)
            self._tasks.clear()
            await self._loop.run_in_executor(self._copy, lambda: None)  # every write handed over is done
            self._copy.shutdown(wait=False)
            await self._record(force=True)

    def _spawn(self) -> None:
        task = asyncio.create_task(self._connection())
        self._tasks.add(task)

    def _grow_to(self, target: int) -> None:
        self.target = min(target, self.per_file)
        while len(self._tasks) < self.target and self.plan.can_split() and self.budget.try_acquire(self):
            self._spawn()

    async def _ramp(self) -> None:
        """Step the connections up while each step makes the throughput grow and the loop has room;
        take back a step that did not help."""
        best, last = 0.0, (time.monotonic(), self._received, time.thread_time())
        while self.target < self.per_file:
            await asyncio.sleep(RAMP_INTERVAL)
            now, received, cpu = time.monotonic(), self._received, time.thread_time()  # this loop's thread
            elapsed = max(1e-6, now - last[0])
            rate, busy = (received - last[1]) / elapsed, (cpu - last[2]) / elapsed
            last = (now, received, cpu)
            if not self.ranges_ok:
                continue
            if busy > LOOP_BUSY:
                return  # the loop, not the link, is the limit now: more connections would only compete for it
            if best and rate < best * RAMP_GROWTH:
                self.target //= 2  # the last step did not help: its connections leave after their piece
                return
            best = rate
            self._grow_to(self.target * 2)

    async def _connection(self) -> None:
        failures = 0
        try:
            while not self.plan.finished and not self.budget.should_yield(self) and len(self._tasks) <= self.target:
                segment = self.plan.claim(self.per_file)
                if segment is None:
                    return
                before = segment.pos
                try:
                    await self._fetch(segment)
                    failures = 0
                except (aiohttp.ClientError, asyncio.TimeoutError, RetryableError) as exc:
                    error = as_retryable(exc)
                    failures = 1 if segment.pos > before else failures + 1  # the budget resets when bytes flow
                    self.plan.release(segment)
                    if failures >= self.transfer.retry.attempts:
                        raise NetworkFailure(f"Gave up after {failures} tries: {error}",
                                             {"error": str(error)}) from None
                    delay = self.transfer.retry.delay(failures, error.retry_after)
                    log.info("Range %d-%d: retrying in %.1f s: %s", segment.pos, segment.end, delay, error)
                    await asyncio.sleep(delay)
                finally:
                    self.plan.release(segment)
        finally:
            self._tasks.discard(asyncio.current_task())  # at once, so the others count right
            self.budget.release(self)

    def _url(self) -> str:
        if self.cdn_url is not None and _expired(self.cdn_url):
            self.cdn_url = None
        return self.cdn_url or self.resolved.url

    async def _fetch(self, segment: Segment) -> None:
        url = self._url()
        headers = {"Accept-Encoding": "identity", "Range": f"bytes={segment.pos}-{segment.end - 1}"}
        session, tokens = self.transfer.session, self.transfer.tokens
        async with await request(session, "GET", url, tokens, headers, read_bufsize=READ_BUFFER) as response:
            if response.status in (403, 410) and str(response.url) != self.resolved.url:
                self.cdn_url = None  # the CDN's signed URL expired: ask the Hub for a fresh one
                raise RetryableError(f"the CDN URL expired ({response.status})", retry_after=0)
            _check_range_answer(response, segment, self.resolved)
            if response.status == 200:
                raise OneStream()
            if str(response.url) != self.resolved.url:
                self.cdn_url = str(response.url)
            if not self.ranges_ok:
                self.ranges_ok = True
                self._grow_to(FIRST_STEP)
            await self._stream(response, segment)
        if segment.remaining and segment.end == self.plan.size:
            raise RetryableError(f"stream ended at {segment.pos} of {self.plan.size} bytes")

    async def _stream(self, response: aiohttp.ClientResponse, segment: Segment) -> None:
        stream = self.part.stream(segment.pos)
        slots = asyncio.Semaphore(IN_FLIGHT)
        batch: list[bytes] = []
        pending = 0
        try:
            async for data, _ in response.content.iter_chunks():
                room = segment.remaining
                if len(data) > room:
                    data = data[:room]  # the rest of this range went to another connection
                await self.bandwidth.take(len(data))
                batch.append(data)
                pending += len(data)
                segment.pos += len(data)
                self._received += len(data)
                if pending >= BATCH or not segment.remaining:
                    await self._hand_over(stream, batch, slots)
                    batch, pending = [], 0
                    self._report()
                if not segment.remaining:
                    break
        finally:
            if batch:
                await self._hand_over(stream, batch, slots)
            await asyncio.shield(self._loop.run_in_executor(self._copy, stream.close))
            self._report()

    async def _hand_over(self, stream: RangeStream, batch: list[bytes], slots: asyncio.Semaphore) -> None:
        if self.part.error is not None:
            raise self.transfer.write_failure(self.part.error, self.part.path)
        await slots.acquire()
        future = self._copy.submit(_append_all, stream, batch)
        future.add_done_callback(lambda _f: self._loop.call_soon_threadsafe(slots.release))

    def _report(self) -> None:
        self.progress(self.plan.size - self.plan.remaining(), self.plan.size, self.connections)
        now = time.monotonic()
        if now - self._recorded_at >= RECORD_INTERVAL and self.part.on_disk_bytes() - self._recorded >= RECORD_EVERY:
            self._recorded_at = now
            self._loop.create_task(self._record())

    async def _record(self, force: bool = False) -> None:
        """Write the on-disk ranges into the sidecar (one write at a time)."""
        if self._recording is not None and not self._recording.done():
            if not force:
                return
            await asyncio.shield(self._recording)
        self._recorded = self.part.on_disk_bytes()
        held = self.part.held()
        self._recording = asyncio.ensure_future(self.transfer.threads.run(self.record, held))
        with contextlib.suppress(OSError):
            await asyncio.shield(self._recording)


def _append_all(stream: RangeStream, batch: list[bytes]) -> None:
    for data in batch:
        stream.append(data)


def _check_range_answer(response: aiohttp.ClientResponse, segment: Segment, resolved: Resolved) -> None:
    check_status(response, resolved)
    if response.status == 206 and not response.headers.get("Content-Range", "").startswith(f"bytes {segment.pos}-"):
        raise RetryableError("server answered another range", retry_after=0)


def _expired(url: str) -> bool:
    """Whether a signed URL (CloudFront's `Expires`, S3's `X-Amz-Date` + `X-Amz-Expires`) has expired."""
    query = parse_qs(urlparse(url).query)
    try:
        if "Expires" in query:
            return time.time() > float(query["Expires"][0]) - EXPIRY_MARGIN
        if "X-Amz-Expires" in query and "X-Amz-Date" in query:
            signed = time.mktime(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")) - time.timezone
            return time.time() > signed + float(query["X-Amz-Expires"][0]) - EXPIRY_MARGIN
    except ValueError:
        return False
    return False
