"""The sha256 of every model file, computed once in the background and kept.

A scan lists the model index (every folder ComfyUI knows, extra paths included), stats each file,
and hashes only those whose (size, mtime_ns, inode) it has not hashed before; a file the
dashboard downloaded reuses the hash it verified. Hashing runs on one thread of its own at the
lowest CPU and IO priority, waits while ComfyUI runs a prompt, and saves each hash as it is done,
so a restart goes on where it stopped. The first scan starts `START_DELAY` seconds after the
dashboard (not to compete with ComfyUI's own start), or at once with `scan()`; after it,
`models_changed` events start another. Progress is `status()` and `library_progress` events (at
most 4 a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...events import Event, EventBus
from ...store import Store
from ...threads import Threads
from ..model_index import RELPATH, ROOT, SIZE, ModelIndex, Row

log = logging.getLogger("dashboard.library")

#: Bytes read at a time: large reads keep hashing as fast as sha256sum.
CHUNK = 8 * 1024 * 1024
EVENT_INTERVAL = 0.25
#: Hashes written to the database at once.
_BATCH = 64
#: Seconds between the dashboard's start and its first scan.
START_DELAY = 30.0


@dataclass(frozen=True)
class _Todo:
    path: str
    abspath: str
    size: int
    mtime_ns: int
    inode: int


class Cancelled(Exception):
    """The scan was stopped while a file was being hashed."""


class LibraryHashes:
    """Keeps `path -> sha256` for every model file; see the module docstring."""

    def __init__(self, index: ModelIndex, store: Store, bus: EventBus, installed: Mapping[str, dict[str, Any]],
                 threads: Threads, enabled: bool = True) -> None:
        self.index = index
        self.store = store
        self.bus = bus
        self.installed = installed  # the download manager's verified records
        self.threads = threads
        self.enabled = enabled
        self._hasher = Threads("dashboard-hash", max_workers=1)
        self._known: dict[str, tuple[int, int, int, str]] = {}  # path -> (size, mtime_ns, inode, sha256)
        self._go = threading.Event()  # cleared while ComfyUI runs a prompt
        self._go.set()
        self._stopping = threading.Event()
        self._task: asyncio.Task | None = None
        self._again = False
        self._unsubscribe: Callable[[], None] | None = None
        self._progress = {"files_total": 0, "files_hashed": 0, "bytes_total": 0, "bytes_hashed": 0}
        self._last_event = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._first: asyncio.TimerHandle | None = None
        self._scanning = False

    async def start(self) -> None:
        """Load what was hashed before and start a first scan."""
        self._loop = asyncio.get_running_loop()
        self._hasher.start()
        self._known = await self.store.file_hashes()
        self._unsubscribe = self.bus.subscribe(self._on_event)
        if self.enabled:
            self._first = asyncio.get_running_loop().call_later(START_DELAY, self.scan)

    async def stop(self) -> None:
        self._stopping.set()
        self._go.set()
        if self._first is not None:
            self._first.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._hasher.stop()

    def scan(self) -> dict[str, Any]:
        """Start a scan now (or another one right after the running one); the status."""
        if self._first is not None:
            self._first.cancel()
        if self._task is None or self._task.done():
            self._scanning = True  # from now: the answer to this call says so
            self._task = asyncio.create_task(self._scan_all())
        else:
            self._again = True
        return self.status()

    def status(self) -> dict[str, Any]:
        """`{status: scanning|idle, paused, files_total, files_hashed, bytes_total, bytes_hashed}`."""
        scanning = self._scanning
        return {"status": "scanning" if scanning else "idle", "paused": scanning and not self._go.is_set(),
                **self._progress}

    def sha256(self, path: str, size: int) -> str | None:
        """The hash of the file at `path` if it was hashed at this size (the next scan checks its mtime)."""
        known = self._known.get(path)
        return known[3] if known is not None and known[0] == size else None

    def hashes(self) -> dict[str, str]:
        """path -> sha256 of every file hashed, as of the last scan."""
        return {path: known[3] for path, known in self._known.items()}

    # the scan

    async def _scan_all(self) -> None:
        self._scanning = True
        try:
            while True:
                self._again = False
                await self._scan_once()
                if not self._again:
                    break
        except Cancelled:
            pass
        except Exception:  # a scan must never take anything down; the next change starts another
            log.exception("The library scan failed")
        finally:
            self._scanning = False
            self._publish(force=True)  # idle

    async def _scan_once(self) -> None:
        await self.index.refresh(force=True)
        rows = self.index.rows()
        todo, reused, gone = await self.threads.run(self._plan, rows)
        if gone:
            for path in gone:
                self._known.pop(path, None)
            await self.store.forget_hashes(gone)
        if reused:
            self._known.update({e[0]: e[1:] for e in reused})
            await self.store.save_hashes(reused)
        total = sum(row[SIZE] for row in rows.values())
        pending = sum(t.size for t in todo)
        self._progress = {"files_total": len(rows), "files_hashed": len(rows) - len(todo), "bytes_total": total,
                          "bytes_hashed": total - pending}
        self._publish(force=True)
        batch: list[tuple[str, int, int, int, str]] = []
        for item in todo:
            base = self._progress["bytes_hashed"]
            digest = await self._hasher.run(self._hash, item, lambda n, base=base: self._moved(base + n))
            if digest is None:  # changed or gone while hashing: the next scan takes it again
                continue
            entry = (item.path, item.size, item.mtime_ns, item.inode, digest)
            self._known[item.path] = entry[1:]
            batch.append(entry)
            self._progress["files_hashed"] += 1
            self._progress["bytes_hashed"] = base + item.size
            if len(batch) >= _BATCH:
                await self.store.save_hashes(batch)
                batch = []
            self._publish()
        if batch:
            await self.store.save_hashes(batch)

    def _plan(self, rows: Mapping[str, Row]) -> tuple[list[_Todo], list[tuple], list[str]]:
        """Blocking: (files to hash, hashes reused from verified downloads, paths no longer there)."""
        todo: list[_Todo] = []
        reused: list[tuple] = []
        for path, row in rows.items():
            abspath = os.path.join(row[ROOT], *row[RELPATH].split("/"))
            try:
                st = os.stat(abspath)
            except OSError:
                continue
            key = (st.st_size, st.st_mtime_ns, st.st_ino)
            known = self._known.get(path)
            if known is not None and known[:3] == key:
                continue
            record = self.installed.get(path)
            if record and record.get("sha256") and record.get("size") == st.st_size \
                    and record.get("mtime_ns") == st.st_mtime_ns:
                reused.append((path, *key, record["sha256"]))
                continue
            todo.append(_Todo(path, abspath, *key))
        gone = [path for path in self._known if path not in rows]
        todo.sort(key=lambda t: t.path)
        return todo, reused, gone

    def _hash(self, item: _Todo, moved: Callable[[int], None]) -> str | None:
        """Blocking, on the hashing thread: the file's sha256, or None if it changed meanwhile."""
        _lowest_priority()
        digest = hashlib.sha256()
        view = _buffer()[:min(CHUNK, item.size + 1)]  # one buffer per thread: a new 8 MiB one costs per file
        done = 0
        last = time.monotonic()
        try:
            with open(item.abspath, "rb", buffering=0) as handle:
                with contextlib.suppress(AttributeError, OSError):
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while n := handle.readinto(view):
                    digest.update(view[:n])
                    done += n
                    if not self._go.is_set():
                        self._go.wait()
                    if self._stopping.is_set():
                        raise Cancelled
                    if time.monotonic() - last >= EVENT_INTERVAL:
                        last = time.monotonic()
                        moved(done)
                st = os.fstat(handle.fileno())
        except OSError:
            return None
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (item.size, item.mtime_ns, item.inode) or done != item.size:
            return None
        return digest.hexdigest()

    def _moved(self, bytes_hashed: int) -> None:
        """From the hashing thread: progress within a big file."""
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            self._loop.call_soon_threadsafe(self._progress_at, bytes_hashed)

    def _progress_at(self, bytes_hashed: int) -> None:
        self._progress["bytes_hashed"] = max(self._progress["bytes_hashed"], bytes_hashed)
        self._publish()

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_event >= EVENT_INTERVAL:
            self._last_event = now
            self.bus.publish("library_progress", self.status(), "downloads")

    def _on_event(self, event: Event) -> None:
        if event.type == "queue_update":  # ComfyUI runs a prompt: the disk and the CPU are its
            if event.data.get("queue_running"):
                self._go.clear()
            else:
                self._go.set()
            self._publish(force=True)
        elif event.type == "models_changed" and self.enabled and self._task is not None:
            self.scan()  # after the first scan: before it, that one will see the change


_priority = threading.local()
_buffers = threading.local()


def _buffer() -> memoryview:
    """This thread's read buffer."""
    if not hasattr(_buffers, "view"):
        _buffers.view = memoryview(bytearray(CHUNK))
    return _buffers.view


def _lowest_priority() -> None:
    """This thread at the lowest CPU priority, and idle IO class where the OS has one (Linux)."""
    if getattr(_priority, "set", False):
        return
    _priority.set = True
    tid = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, tid, 19)  # on Linux, per thread
    with contextlib.suppress(Exception):
        import psutil

        psutil.Process(tid).ionice(psutil.IOPRIO_CLASS_IDLE)
