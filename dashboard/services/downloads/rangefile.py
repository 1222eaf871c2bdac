"""A `.part` file written at many offsets at once, and hashed in order as its prefix grows.

Each connection writes through its own `RangeStream`: bytes are copied into two aligned buffers
and written at their offset with `pwrite`, straight to the disk where the filesystem takes
`O_DIRECT` (as `PartFile` does), else through the page cache. `RangeFile.on_disk` records which
ranges the kernel has (what the sidecar may claim after a `kill -9`). The hashes need the bytes in
order: bytes copied in exactly where the hashed prefix ends are hashed right away, while still in
the CPU's cache (a single stream is hashed as `PartFile` hashes); everything else is read back by
a hashing thread as soon as the prefix before it is on disk, so at the end only the last piece is
left to hash.

Blocking: `RangeStream.append`/`flush` run in the file's copy thread, the rest in any thread.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .limits import download_threads
from .partfile import ALIGN
from .ranges import Extents

#: Each stream's two write buffers.
STREAM_BUFFER = 1024 * 1024
#: The hashing thread reads this much at a time.
HASH_READ = 8 * 1024 * 1024
#: Copy, then hash, this much at a time (see `partfile.STEP`).
STEP = 512 * 1024
_DIRECT = getattr(os, "O_DIRECT", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class RangeFile:
    """`path`, `size` bytes long once complete; `held` is what it already holds (from its sidecar).
    `hashers` have seen the file's first `hashed` bytes (0: they are fresh)."""

    def __init__(self, path: Path, size: int, held: Extents, hashers: list[Any], hashed: int = 0) -> None:
        self.path = path
        self.size = size
        self.hashers = hashers
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | _BINARY, 0o644)
        self.direct_fd = -1
        self.read_fd = -1
        if _DIRECT:
            with contextlib.suppress(OSError):
                self.direct_fd = os.open(path, os.O_WRONLY | _DIRECT)
                self.read_fd = os.open(path, os.O_RDONLY | _DIRECT)
        self._direct = self.direct_fd >= 0 and self.read_fd >= 0
        if os.fstat(self.fd).st_size > size:
            os.ftruncate(self.fd, size)
        self.on_disk = Extents((s, min(e, size)) for s, e in held)
        self.error: BaseException | None = None
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-disk",
                                     initializer=download_threads.register)
        self._state = threading.Condition()
        self._hashing = threading.Lock()
        self._hashed = hashed
        self._closed = False
        self._hasher = threading.Thread(target=self._hash_in_order, name="dashboard-hash", daemon=True)
        self._hasher.start()

    @property
    def direct(self) -> bool:
        """Whether full buffers bypass the page cache."""
        return self._direct

    def stop_direct(self) -> None:
        """Write and read through the page cache from now on (the direct descriptors stay open
        until `close`, as another thread may be using them)."""
        self._direct = False

    def stream(self, start: int) -> RangeStream:
        """A writer of consecutive bytes from `start` (a multiple of the block size)."""
        if start % ALIGN:
            raise ValueError(f"a stream starts on a block boundary, not at {start}")
        return RangeStream(self, start)

    def held(self) -> list[list[int]]:
        """The ranges on disk now, for the sidecar."""
        with self._state:
            return self.on_disk.as_list()

    def on_disk_bytes(self) -> int:
        with self._state:
            return self.on_disk.total()

    def finish(self) -> list[str]:
        """Wait until every byte is on disk and hashed, fsync, and return the hex digests."""
        with self._state:
            self._state.wait_for(lambda: self.error is not None or self._hashed >= self.size or self._closed)
            if self.error is not None:
                raise self.error
            if self._hashed < self.size:
                raise OSError(errno.EIO, f"{self.path.name} is incomplete")
        os.fsync(self.fd)
        return [hasher.hexdigest() for hasher in self.hashers]

    def close(self) -> None:
        """Stop hashing and close (streams must be flushed first)."""
        with self._state:
            self._closed = True
            self._state.notify_all()
        self._hasher.join()
        self.io.shutdown(wait=True)
        for fd in (self.fd, self.direct_fd, self.read_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.direct_fd = self.read_fd = -1

    # -- in the I/O threads --

    def _hash_next(self, offset: int, view: memoryview) -> None:
        """Hash what `view` (bytes at `offset`) holds right after the hashed prefix, if anything (in the
        copy thread, while hot in cache)."""
        end = offset + len(view)
        if not offset <= self._hashed < end or not self._hashing.acquire(blocking=False):
            return
        try:
            hashed = self._hashed
            if offset <= hashed < end:
                for hasher in self.hashers:
                    hasher.update(view[hashed - offset:])
                with self._state:
                    self._hashed = end
        finally:
            self._hashing.release()

    def _written(self, offset: int, length: int) -> None:
        """`length` bytes at `offset` are on disk now."""
        with self._state:
            self.on_disk.add(offset, offset + length)
            self._state.notify_all()

    def _failed(self, error: BaseException) -> None:
        with self._state:
            if self.error is None:
                self.error = error
            self._state.notify_all()

    def _hash_in_order(self) -> None:
        download_threads.register()
        buffer = mmap.mmap(-1, HASH_READ + ALIGN)
        try:
            while True:
                with self._state:
                    self._state.wait_for(lambda: self._closed or self.error is not None
                                         or self._readable() > self._hashed)
                    if self._closed or self.error is not None:
                        return
                    end = min(self._readable(), self._hashed + HASH_READ)
                with self._hashing:
                    start = self._hashed
                    if start < end:
                        self._hash_range(buffer, start, end)
                        with self._state:
                            self._hashed = end
                            self._state.notify_all()
        except OSError as exc:
            self._failed(exc)
        finally:
            buffer.close()

    def _readable(self) -> int:
        """Where the hashing thread may read up to: the on-disk prefix, on a block boundary unless complete."""
        prefix = min(self.on_disk.prefix(), self.size)
        return prefix if prefix == self.size else prefix - prefix % ALIGN

    def _hash_range(self, buffer: mmap.mmap, start: int, end: int) -> None:
        view = memoryview(buffer)
        try:
            while start < end:
                want = end - start
                got = -1
                if self._direct and start % ALIGN == 0:
                    try:
                        got = os.preadv(self.read_fd, [view[:_up(want)]], start)
                    except OSError as exc:
                        if exc.errno != errno.EINVAL:
                            raise
                        self.stop_direct()
                if got < 0:
                    got = os.preadv(self.fd, [view[:want]], start)
                if got <= 0:
                    raise OSError(errno.EIO, f"{self.path.name} is shorter than its recorded ranges")
                got = min(got, want)
                for hasher in self.hashers:
                    hasher.update(view[:got])
                start += got
            if not self._direct and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(self.fd, 0, end, os.POSIX_FADV_DONTNEED)
        finally:
            view.release()


class RangeStream:
    """Consecutive bytes from `start` on, written by one connection."""

    def __init__(self, file: RangeFile, start: int) -> None:
        self.file = file
        self.pos = start  # where the next appended byte goes
        self._buffers = [mmap.mmap(-1, STREAM_BUFFER) for _ in range(2)]
        self._pending: list[Future | None] = [None, None]
        self._current = 0
        self._fill = 0
        self._start = start  # file offset of the current buffer

    def append(self, data: bytes) -> None:
        """Copy `data` in; full buffers go to the disk. Raises the error of an earlier write."""
        if self.file.error is not None:
            raise self.file.error
        view = memoryview(data)
        while view:
            n = min(len(view), STREAM_BUFFER - self._fill, STEP)
            chunk = memoryview(self._buffers[self._current])[self._fill:self._fill + n]
            chunk[:] = view[:n]
            self.file._hash_next(self.pos, chunk)
            chunk.release()
            self._fill += n
            self.pos += n
            view = view[n:]
            if self._fill == STREAM_BUFFER:
                self._submit()

    def flush(self) -> None:
        """Write out what is buffered and wait for every write of this stream."""
        if self._fill:
            self._submit()
        for index in (0, 1):
            self._wait(index)
        if self.file.error is not None:
            raise self.file.error

    def close(self) -> None:
        """Flush (keeping every byte received, as a pause should) and free the buffers."""
        try:
            self.flush()
        finally:
            for buffer in self._buffers:
                with contextlib.suppress(BufferError):
                    buffer.close()

    def _submit(self) -> None:
        index, offset, length = self._current, self._start, self._fill
        self._pending[index] = self.file.io.submit(self._write_out, index, offset, length)
        self._current, self._fill, self._start = 1 - index, 0, offset + length
        self._wait(self._current)

    def _wait(self, index: int) -> None:
        future, self._pending[index] = self._pending[index], None
        if future is not None:
            future.result()

    # -- in an I/O thread --

    def _write_out(self, index: int, offset: int, length: int) -> None:
        if self.file.error is not None:
            return  # after a failed write nothing more is written
        view = memoryview(self._buffers[index])[:length]
        try:
            direct = length - length % ALIGN if self.file.direct else 0
            try:
                _pwrite_all(self.file.direct_fd, view[:direct], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.file.stop_direct()  # this filesystem takes O_DIRECT at open but not for writes
                direct = 0
            _pwrite_all(self.file.fd, view[direct:], offset + direct)
            self.file._written(offset, length)
        except OSError as exc:
            self.file._failed(exc)
        finally:
            view.release()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _up(value: int) -> int:
    return value + (-value) % ALIGN
