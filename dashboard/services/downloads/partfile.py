"""A `.part` file that hashes the bytes it appends and writes them around the page cache.

Bytes are copied into two page-aligned buffers, hashed there while they are still in the CPU's
cache, and written by an I/O thread while the next buffer fills. Where the filesystem takes
`O_DIRECT` (Linux: ext4, xfs, btrfs, recent tmpfs...) full buffers go straight to the disk: no
copy into the page cache and no writeback afterwards (a fraction of the CPU of a buffered write),
and a 50 GB install does not push the models ComfyUI has cached out of memory. Elsewhere the same
buffers go through the page cache, which is asked to write them back and let them go as it goes.

Blocking: use it from one thread (the file's writer thread).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .limits import download_threads

#: File offsets and lengths of direct writes are multiples of this (every common block size divides it).
ALIGN = 4096
BUFFER = 4 * 1024 * 1024
#: Copy, then hash, this much at a time: it is still in the core's cache when the hash reads it.
STEP = 512 * 1024
#: Without O_DIRECT: ask for writeback (and drop clean pages) every this many bytes.
RELEASE_EVERY = 32 * 1024 * 1024
_DIRECT = getattr(os, "O_DIRECT", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class PartFile:
    """Appends to `path` from `offset` on (what is before it is kept and hashed again)."""

    def __init__(self, path: Path, offset: int, hashers: list[Any]) -> None:
        self.hashers = hashers
        self._fd, self.direct = _open(path)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-disk",
                                      initializer=download_threads.register)
        self._buffers = [memoryview(mmap.mmap(-1, BUFFER)) for _ in range(2)]
        self._pending: list[Future | None] = [None, None]
        self._current = 0
        self._fill = 0
        self._unreleased = 0
        self._broken = False
        try:
            os.ftruncate(self._fd, offset)
            self._resume(path, offset)
        except BaseException:
            self._fill = 0  # nothing staged may land at the wrong offset
            self.close()
            raise

    def append(self, data: bytes) -> None:
        """Hash `data` and queue it for the disk; raises the error of an earlier write (OSError)."""
        view = memoryview(data)
        while view:
            buffer = self._buffers[self._current]
            n = min(len(view), BUFFER - self._fill, STEP)
            chunk = buffer[self._fill:self._fill + n]
            chunk[:] = view[:n]
            for hasher in self.hashers:
                hasher.update(chunk)
            self._fill += n
            view = view[n:]
            if self._fill == BUFFER:
                self._submit()

    def finish(self) -> list[str]:
        """Write out everything, fsync, and return the hex digests."""
        self._drain()
        os.fsync(self._fd)
        return [hasher.hexdigest() for hasher in self.hashers]

    def close(self) -> None:
        """Write out what is buffered (a paused download keeps every byte it got) and close."""
        try:
            if self._fd >= 0:
                self._drain()
        finally:
            self._io.shutdown(wait=True)
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _resume(self, path: Path, offset: int) -> None:
        """Hash [0, offset) again; stage its unaligned tail, so direct writes start on a block boundary."""
        start = offset - offset % ALIGN
        with open(path, "rb") as existing:
            remaining = start
            while remaining:
                block = existing.read(min(8 * BUFFER, remaining))
                if not block:
                    raise OSError(errno.EIO, f"{path.name} is shorter than it was")
                for hasher in self.hashers:
                    hasher.update(block)
                remaining -= len(block)
            tail = existing.read(offset - start)
        self.append(tail)
        os.lseek(self._fd, start, os.SEEK_SET)

    def _submit(self) -> None:
        index, length = self._current, self._fill
        self._pending[index] = self._io.submit(self._write_out, index, length)
        self._current, self._fill = 1 - index, 0
        self._wait(self._current)

    def _drain(self) -> None:
        if self._fill:
            self._submit()
        for index in (0, 1):
            self._wait(index)

    def _wait(self, index: int) -> None:
        future, self._pending[index] = self._pending[index], None
        if future is not None:
            future.result()

    # -- in the I/O thread --

    def _write_out(self, index: int, length: int) -> None:
        if self._broken:  # after a failed write, later bytes would land at the wrong offset
            return
        try:
            self._write_fully(index, length)
        except BaseException:
            self._broken = True
            raise

    def _write_fully(self, index: int, length: int) -> None:
        if self.direct and length % ALIGN:
            self._stop_direct()  # the last, partial block: through the page cache
        view = self._buffers[index][:length]
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                if not (self.direct and exc.errno == errno.EINVAL):
                    raise
                self._stop_direct()  # this filesystem takes O_DIRECT at open but not for writes
                continue
            view = view[written:]
        self._unreleased += length
        if not self.direct and self._unreleased >= RELEASE_EVERY and hasattr(os, "posix_fadvise"):
            self._unreleased = 0
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def _stop_direct(self) -> None:
        import fcntl  # only reached where O_DIRECT exists, i.e. on POSIX

        fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~_DIRECT)
        self.direct = False


def _open(path: Path) -> tuple[int, bool]:
    flags = os.O_WRONLY | os.O_CREAT | _BINARY
    if _DIRECT:
        with contextlib.suppress(OSError):
            return os.open(path, flags | _DIRECT, 0o644), True
    return os.open(path, flags, 0o644), False
