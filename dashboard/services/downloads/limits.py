"""The downloads' limits, changeable while they run: bandwidth, connections, yielding to generation.

`Limits` owns the shared `Bandwidth` and `Connections` budgets and the settings behind them
(`GET/PUT /api/downloads/settings`). While ComfyUI runs a prompt and `yield_to_generation` is
on, downloads drop to `yield_share` of their budget (of the measured throughput when no cap is
set) and the download threads (copying, hashing, writing) run at a lower CPU priority; both come
back when the queue is idle. Changes apply to transfers already running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from dataclasses import asdict, dataclass, replace
from typing import Any

from .budget import Bandwidth, Connections

log = logging.getLogger("dashboard.downloads")

#: How much nicer than their own niceness download threads get while a prompt runs.
YIELD_NICENESS = 10


@dataclass(frozen=True)
class LimitSettings:
    """What `GET /api/downloads/settings` answers (plus `yielding`)."""

    max_bandwidth_bytes: int | None = None
    connections_per_file: int = 8
    max_connections: int = 16
    yield_to_generation: bool = False
    yield_share: float = 0.25


class Limits:
    """The budgets every transfer shares, and whether downloads yield right now."""

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings
        self.bandwidth = Bandwidth(settings.max_bandwidth_bytes)
        self.connections = Connections(settings.max_connections, settings.connections_per_file)
        self.generating = False

    @property
    def yielding(self) -> bool:
        """Whether downloads are slowed for a running prompt now."""
        return self.generating and self.settings.yield_to_generation

    def snapshot(self) -> dict[str, Any]:
        """The settings, whether downloads yield now, and the connections in use."""
        return {**asdict(self.settings), "yielding": self.yielding, "connections_in_use": self.connections.in_use()}

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply validated changes (None for `max_bandwidth_bytes` lifts the cap); returns the snapshot."""
        self.settings = replace(self.settings, **changes)
        self.connections.total = self.settings.max_connections
        self.connections.per_file = self.settings.connections_per_file
        self.connections.changed()
        self._apply()
        return self.snapshot()

    def set_generating(self, running: bool) -> None:
        """ComfyUI started or finished running prompts."""
        if running != self.generating:
            self.generating = running
            self._apply()

    def _apply(self) -> None:
        rate = self.settings.max_bandwidth_bytes
        if self.yielding:
            base = rate or self.bandwidth.measured()
            self.bandwidth.rate, self.bandwidth.share = (base, self.settings.yield_share) if base else (None, 1.0)
        else:
            self.bandwidth.rate, self.bandwidth.share = rate, 1.0
        download_threads.set_lowered(self.yielding)


class _DownloadThreads:
    """The threads that copy, hash and write downloads, so their CPU priority can follow `Limits`."""

    def __init__(self) -> None:
        #: thread -> (native id, the niceness it started with)
        self._threads: weakref.WeakKeyDictionary[threading.Thread, tuple[int, int]] = weakref.WeakKeyDictionary()
        self._lowered = False
        self._lock = threading.Lock()

    def register(self) -> None:
        """Call from a download thread when it starts (a ThreadPoolExecutor initializer)."""
        tid = threading.get_native_id()
        base = os.getpriority(os.PRIO_PROCESS, tid) if hasattr(os, "getpriority") else 0
        with self._lock:
            self._threads[threading.current_thread()] = (tid, base)
            lowered = self._lowered
        if lowered:
            _nice(tid, base + YIELD_NICENESS)

    def set_lowered(self, lowered: bool) -> None:
        with self._lock:
            if lowered == self._lowered:
                return
            self._lowered = lowered
            threads = [ids for thread, ids in self._threads.items() if thread.is_alive()]
        for tid, base in threads:
            _nice(tid, base + YIELD_NICENESS if lowered else base)


def _nice(native_id: int, niceness: int) -> None:
    """Set one thread's niceness (Linux: threads have their own). Raising it back may need privileges."""
    if not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, native_id, min(19, niceness))


download_threads = _DownloadThreads()
