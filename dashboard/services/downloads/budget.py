"""What all downloads share: a bandwidth budget and a connection budget.

`Bandwidth` is a token bucket over every byte read: `rate` bytes a second (None: unlimited),
times `share` (below 1 while ComfyUI generates). Both can change while bytes flow. `Connections`
caps the connections of all files together and per file, and shares them fairly: a file may
open another connection only while it holds less than its share of the total, and a file that
holds more than its share gives one back at its next segment boundary when another file waits.
Use both from the event loop only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

#: Longest single wait, so a changed rate takes effect quickly.
_MAX_WAIT = 0.25
#: A bucket holds at most this many seconds of the rate (the burst a connection may take at once).
_BURST_SECONDS = 0.1
#: Throughput is measured over windows of this many seconds.
_MEASURE_WINDOW = 1.0


class Bandwidth:
    """A token bucket for all downloads together."""

    def __init__(self, rate: float | None = None) -> None:
        self.rate = rate
        self.share = 1.0
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._window = (self._stamp, 0)  # start and bytes of the current measuring window
        self._measured = 0.0

    @property
    def effective(self) -> float | None:
        """Bytes a second allowed now (None: unlimited)."""
        return None if self.rate is None else self.rate * self.share

    def measured(self) -> float:
        """Bytes a second read recently (0 when nothing was read for a while)."""
        started, count = self._window
        elapsed = time.monotonic() - started
        if elapsed > 5 * _MEASURE_WINDOW:
            return 0.0
        return max(self._measured, count / elapsed if elapsed >= _MEASURE_WINDOW else 0.0)

    async def take(self, size: int) -> None:
        """Wait until `size` more bytes may be read."""
        started, count = self._window
        now = time.monotonic()
        if now - started >= _MEASURE_WINDOW:
            self._measured = count / (now - started)
            self._window = (now, size)
        else:
            self._window = (started, count + size)
        while (rate := self.effective) is not None:
            now = time.monotonic()
            self._tokens = min(rate * _BURST_SECONDS, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 0:
                self._tokens -= size  # may go below zero: the next reader waits it off
                return
            await asyncio.sleep(min(_MAX_WAIT, -self._tokens / rate))


class Connections:
    """The connection budget: `total` in all, `per_file` for one file, shared fairly."""

    def __init__(self, total: int, per_file: int) -> None:
        self.total = total
        self.per_file = per_file
        self._held: Counter[object] = Counter()
        self._waiting: Counter[object] = Counter()
        self._wakeups: list[asyncio.Future[None]] = []

    def held(self, owner: object) -> int:
        """Connections `owner` holds."""
        return self._held[owner]

    def in_use(self) -> int:
        """Connections held by everyone."""
        return sum(self._held.values())

    def _share(self) -> int:
        owners = len(set(self._held) | set(self._waiting))
        return max(1, self.total // max(1, owners))

    def try_acquire(self, owner: object) -> bool:
        """Take one more connection for `owner` if the budget and its share allow it."""
        held = self._held[owner]
        if held >= self.per_file or self.in_use() >= self.total:
            return False
        if held >= 1 and held >= self._share():
            return False
        self._held[owner] += 1
        return True

    async def acquire(self, owner: object) -> None:
        """Wait for a connection for `owner` (its first one, typically)."""
        self._waiting[owner] += 1
        try:
            while not self.try_acquire(owner):
                wakeup = asyncio.get_running_loop().create_future()
                self._wakeups.append(wakeup)
                await wakeup
        finally:
            self._waiting[owner] -= 1
            if not self._waiting[owner]:
                del self._waiting[owner]

    def should_yield(self, owner: object) -> bool:
        """Whether `owner` holds more than its share (or than the limits) and should give one back."""
        held = self._held[owner]
        over_limits = held > self.per_file or self.in_use() > self.total
        return held > 1 and (over_limits or (bool(self._waiting) and held > self._share()))

    def release(self, owner: object) -> None:
        """Give back one connection of `owner`."""
        if self._held[owner] > 0:
            self._held[owner] -= 1
        if not self._held[owner]:
            del self._held[owner]
        self.changed()

    def changed(self) -> None:
        """A connection was given back or the limits changed: whoever waits tries again."""
        wakeups, self._wakeups = self._wakeups, []
        for wakeup in wakeups:
            if not wakeup.done():
                wakeup.set_result(None)
