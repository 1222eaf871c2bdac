"""Which process owns a `.part`: an advisory lock beside it, `<name>.part.lock`.

POSIX `fcntl` locks (which NFS carries too) or `msvcrt` on Windows, taken without waiting and
released by the OS when the process dies, so a `kill -9` never leaves a file owned by nobody.
Nobody writes, truncates, renames or deletes a `.part` without holding its lock. The holder removes
the lock file when it is done; a process that opened it just before checks, once it holds a lock,
that it is still the file at that path (else it tries again). fcntl locks belong to the process:
one process must not lock the same file twice (the download manager runs one transfer per path).
Blocking: call from a thread.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def lock_path(target: Path) -> Path:
    """The lock file of a final path's `.part`."""
    return target.with_name(target.name + ".part.lock")


class PartLock:
    """The lock on `target`'s `.part`."""

    def __init__(self, target: Path) -> None:
        self.path = lock_path(target)
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it; True when this process holds it now."""
        if self.held:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:  # the holder removed it meanwhile
                raise BlockingIOError
        except OSError:  # held by another process (EAGAIN, EACCES), or replaced under us
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the lock file and let go (the next process makes a new one)."""
        if not self.held:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fd, self._fd = self._fd, -1
        os.close(fd)  # closing the descriptor drops the lock
