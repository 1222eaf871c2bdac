"""The dashboard's own worker threads, for the blocking work it keeps off the event loop.

Inside ComfyUI the event loop is ComfyUI's, and so is the loop's default executor: work handed
there would wait behind ComfyUI's own, and ComfyUI's behind ours. So each dashboard has a pool of
its own, a `Threads` that its `Services` create and hand to every part that blocks (disk scans,
file reads and writes, hashing, psutil and NVML, huggingface_hub calls), start first and stop
last. Two dashboards in one process have two pools: nothing here is shared between them.

A part built on its own (a test, a benchmark, a command-line tool) gets `LOOP_DEFAULT`, the running
loop's default executor. Threads that a part starts for one job of its own (the download writer and
copy threads, the store's one database thread) are not these.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("dashboard")

#: How long `stop` waits for work already running in a thread (it cannot be interrupted).
STOP_TIMEOUT = 10.0


class Threads:
    """A pool of worker threads named `<name>_<n>`, created by `start` and shut down by `stop`."""

    def __init__(self, name: str = "dashboard", max_workers: int | None = None) -> None:
        self.name = name
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._busy: set[Future] = set()
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether work can be handed over now."""
        return self._pool is not None

    def start(self) -> None:
        """Create the pool; idempotent."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.name)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Take no more work, drop what waits for a thread, and wait (without blocking the loop) up
        to `timeout` seconds for what is running; idempotent."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = [future for future in self._busy if not future.done()]
        if running:
            _done, left = await asyncio.wait([asyncio.wrap_future(f) for f in running], timeout=timeout)
            if left:
                log.debug("%d dashboard thread(s) still busy after %.0f s; not waiting for them", len(left), timeout)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in one of these threads. Cancelling the caller drops work not yet begun.

        Raises RuntimeError before `start` and after `stop`.
        """
        if self._pool is None:
            raise RuntimeError(f"the {self.name} threads are not running")
        future = self._pool.submit(fn, *args)
        with self._lock:
            self._busy.add(future)
        future.add_done_callback(self._finished)
        return await asyncio.wrap_future(future)

    def _finished(self, future: Future) -> None:
        with self._lock:
            self._busy.discard(future)


class _LoopDefault(Threads):
    """The running loop's default executor, for a part used on its own: nothing to start or stop."""

    @property
    def started(self) -> bool:
        return True

    def start(self) -> None:
        pass

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        pass

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


#: What a part uses when nobody gave it a pool (see the module docstring).
LOOP_DEFAULT: Threads = _LoopDefault("loop-default")
